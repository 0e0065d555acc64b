namespace FastRelay.Sidecar.Models;

/// <summary>Whether repeating the same request may succeed.</summary>
public enum ModelFailureKind
{
    /// <summary>Worth retrying: overload (429), server errors (5xx), connection resets, a cut-off stream.</summary>
    Transient,

    /// <summary>The same request will fail again: bad request, authentication, unknown model, unreadable response.</summary>
    Permanent,
}

/// <summary>A model call failed; <see cref="Kind"/> says whether a retry may help.</summary>
public sealed class ModelException : Exception
{
    public ModelException(ModelFailureKind kind, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
    }

    public ModelFailureKind Kind { get; }

    public bool IsTransient => Kind == ModelFailureKind.Transient;

    /// <summary>HTTP status of the response, when the failure came with one.</summary>
    public int? StatusCode { get; init; }

    /// <summary>The server's Retry-After, when it sent one (429/503).</summary>
    public TimeSpan? RetryAfter { get; init; }
}
