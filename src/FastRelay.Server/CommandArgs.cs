namespace FastRelay.Server;

/// <summary>A usage error: printed without a stack trace, exit code 2.</summary>
internal sealed class CommandLineException(string message) : Exception(message);

/// <summary>Positional arguments and --name value options of a client verb.</summary>
internal sealed class CommandArgs
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.OrdinalIgnoreCase);

    public List<string> Positional { get; } = [];

    /// <summary>Options containing ':' (configuration keys) and --config, handed to the configuration builder.</summary>
    public List<string> Passthrough { get; } = [];

    public static CommandArgs Parse(string[] args)
    {
        var result = new CommandArgs();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                result.Positional.Add(arg);
                continue;
            }

            string name = arg[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (i + 1 < args.Length)
            {
                value = args[++i];
            }

            if (value is null)
            {
                throw new CommandLineException($"option --{name} needs a value");
            }

            if (name.Contains(':') || name.Equals("config", StringComparison.OrdinalIgnoreCase))
            {
                result.Passthrough.Add($"--{name}={value}");
                continue;
            }

            if (!result._options.TryGetValue(name, out var list))
            {
                result._options[name] = list = [];
            }

            list.Add(value);
        }

        return result;
    }

    public string? Get(string name) => _options.TryGetValue(name, out var values) ? values[^1] : null;

    public IReadOnlyList<string> GetAll(string name) => _options.TryGetValue(name, out var values) ? values : [];

    public string Require(string name) => Get(name) ?? throw new CommandLineException($"option --{name} is required");

    public int GetInt(string name, int fallback)
    {
        string? raw = Get(name);
        if (raw is null)
        {
            return fallback;
        }

        return int.TryParse(raw, out int value) && value >= 0
            ? value
            : throw new CommandLineException($"option --{name} must be a non-negative integer, got '{raw}'");
    }
}
