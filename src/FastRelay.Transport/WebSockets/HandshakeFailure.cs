namespace FastRelay.Transport.WebSockets;

/// <summary>Why an upgrade request was refused: the HTTP status code and a plain-text reason for the body.</summary>
public readonly struct HandshakeFailure
{
    private readonly string? _reason;

    public HandshakeFailure(int statusCode, string reason)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 400);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(statusCode, 599);
        ArgumentNullException.ThrowIfNull(reason);
        StatusCode = statusCode;
        _reason = reason;
    }

    /// <summary>400, 405, 426, 431, or whatever the server chose (4xx/5xx).</summary>
    public int StatusCode { get; }

    /// <summary>Sent as the response body.</summary>
    public string Reason => _reason ?? string.Empty;

    public override string ToString() => $"{StatusCode} {Reason}";
}
