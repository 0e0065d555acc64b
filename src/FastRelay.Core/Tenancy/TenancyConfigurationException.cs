namespace FastRelay.Core.Tenancy;

/// <summary>The tenancy configuration is unusable; <see cref="Errors"/> lists every problem found.</summary>
public sealed class TenancyConfigurationException : Exception
{
    public TenancyConfigurationException(IReadOnlyList<string> errors)
        : base("Invalid tenancy configuration: " + string.Join("; ", errors))
    {
        Errors = errors;
    }

    public IReadOnlyList<string> Errors { get; }
}
