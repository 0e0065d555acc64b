using System.Text.Json;
using FastRelay.Sidecar.Calls;

namespace FastRelay.Sidecar.Configuration;

/// <summary>The validated sidecar configuration: where the relay is, and the agents to run.</summary>
public sealed record SidecarConfig(Uri RelayUrl, IReadOnlyList<AgentSpec> Agents)
{
    public const string DefaultRelayUrl = "unix:///tmp/fastrelay.sock";

    /// <summary>
    /// The client id every sidecar of a deployment says HELLO with. Shared on purpose: the relay's idempotent publish keys
    /// on (client id, message id), so a final event re-sent by another sidecar after a crash is recognised as a duplicate.
    /// </summary>
    public const string DefaultClientId = "fastrelay-sidecar";

    /// <summary>Environment variable holding the relay token, when the relay requires one.</summary>
    public string? RelayTokenEnv { get; init; }

    /// <summary>Client id for the relay connection (<see cref="DefaultClientId"/>).</summary>
    public string ClientId { get; init; } = DefaultClientId;

    /// <summary>Job leases and result retention.</summary>
    public JobSettings Jobs { get; init; } = JobSettings.Default;

    /// <summary>Reads and validates a configuration file; throws <see cref="SidecarConfigException"/> listing every problem.</summary>
    /// <param name="environment">Environment lookup (for <c>apiKeyEnv</c>); the process environment when null.</param>
    public static SidecarConfig Load(string path, Func<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new SidecarConfigException(path, [$"cannot read the file: {ex.Message}"]);
        }

        return Parse(json, path, environment);
    }

    /// <summary>Parses and validates configuration JSON; <paramref name="source"/> names it in errors.</summary>
    public static SidecarConfig Parse(string json, string source = "config", Func<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        SidecarConfigJson? raw;
        try
        {
            raw = JsonSerializer.Deserialize(json, SidecarConfigJsonContext.Default.SidecarConfigJson);
        }
        catch (JsonException ex)
        {
            throw new SidecarConfigException(source, [DescribeJsonError(ex)]);
        }

        if (raw is null)
        {
            throw new SidecarConfigException(source, ["the file holds null, not a configuration object"]);
        }

        return SidecarConfigValidator.Validate(raw, source, environment ?? Environment.GetEnvironmentVariable);
    }

    /// <summary>"agents[0].model.timeoutMs: ..." from System.Text.Json's "$.agents[0].model.timeoutMs" path.</summary>
    private static string DescribeJsonError(JsonException ex)
    {
        string path = ex.Path is { Length: > 0 } p ? p.TrimStart('$').TrimStart('.') : "";
        string where = ex.LineNumber is { } line ? $" (line {line + 1})" : "";
        string message = ex.Message;
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0)
        {
            message = message[..cut];
        }

        if (message.Contains("could not be mapped", StringComparison.Ordinal))
        {
            // A field the configuration does not have (UnmappedMemberHandling.Disallow): the path ends with its name.
            return $"{(path.Length == 0 ? "(root)" : path)}: unknown field{where}";
        }

        if (message.Contains("could not be converted", StringComparison.Ordinal))
        {
            return $"{(path.Length == 0 ? "(root)" : path)}: wrong type of value{where}";
        }

        return $"{(path.Length == 0 ? "(root)" : path)}: invalid JSON{where}: {message}";
    }
}

/// <summary>How jobs are leased and remembered in the relay's KV store.</summary>
/// <param name="Lease">How long a worker owns a job without renewing it (it renews every third of it); a job whose
/// owner stopped renewing is taken over by the next worker it is delivered to once this has passed.</param>
/// <param name="KeepResult">How long a finished job's state is kept, so a redelivered job is recognised as done and
/// not run again.</param>
/// <param name="DrainTimeout">On shutdown, how long jobs in progress may run on before they are abandoned to the
/// group (another sidecar picks them up).</param>
public sealed record JobSettings(TimeSpan Lease, TimeSpan KeepResult, TimeSpan DrainTimeout)
{
    public static readonly TimeSpan MinLease = TimeSpan.FromMilliseconds(300);
    public static readonly TimeSpan MaxLease = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan MinKeepResult = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan MaxKeepResult = TimeSpan.FromDays(1);
    public static readonly TimeSpan MaxDrainTimeout = TimeSpan.FromMinutes(10);

    public static JobSettings Default { get; } = new(TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(15));
}

/// <summary>One agent: consumes a topic pattern as a consumer group, calls a model, emits the reply.</summary>
/// <param name="Consumes">Topic or pattern of its jobs (e.g. <c>jobs.summarize</c> or <c>jobs.*</c>), joined as a consumer group.</param>
/// <param name="Group">Consumer group it joins (default: its name), so several sidecars share the work.</param>
/// <param name="Concurrency">Jobs in flight at once: worker count, and the credits it declares to the relay.</param>
public sealed record AgentSpec(string Name, string Consumes, string Group, ModelSpec Model, EmitSpec Emits, int Concurrency);

/// <summary>Where an agent's output goes.</summary>
/// <param name="Topic">A fixed topic that receives each final result (the input of the next agent in a chain), or null.</param>
/// <param name="Reply">Stream to the reply topic the job names (the requester).</param>
/// <param name="Partials">Publish partial events as tokens stream, not only the final one.</param>
public sealed record EmitSpec(string? Topic, bool Reply, bool Partials);

/// <summary>One model call target and its fallback chain.</summary>
/// <param name="Adapter"><see cref="ModelSpec.OpenAi"/> or <see cref="ModelSpec.Scripted"/>.</param>
public sealed record ModelSpec(string Adapter, string Model, ModelPrompt Prompt, ModelCallPolicy Policy)
{
    public const string OpenAi = "openai";
    public const string Scripted = "scripted";

    /// <summary>Server root for <c>openai</c>.</summary>
    public Uri? BaseUrl { get; init; }

    /// <summary>Name of the environment variable that holds the API key (never the key itself).</summary>
    public string? ApiKeyEnv { get; init; }

    /// <summary>Replies of the scripted model; empty = echo the input.</summary>
    public IReadOnlyList<string> Script { get; init; } = [];

    public TimeSpan TokenDelay { get; init; }

    public string EchoPrefix { get; init; } = "";

    public ModelSpec? Fallback { get; init; }

    /// <summary>"adapter:model", as reported in results.</summary>
    public string Name => $"{Adapter}:{Model}";
}
