namespace FastRelay.Sidecar.Configuration;

/// <summary>The configuration was rejected; <see cref="Errors"/> holds one "field: problem" line per problem.</summary>
public sealed class SidecarConfigException : Exception
{
    public SidecarConfigException(string source, IReadOnlyList<string> errors)
        : base($"invalid sidecar configuration {source}:\n  " + string.Join("\n  ", errors))
    {
        ConfigSource = source;
        Errors = errors;
    }

    /// <summary>The file (or name) the configuration came from.</summary>
    public string ConfigSource { get; }

    public IReadOnlyList<string> Errors { get; }
}
