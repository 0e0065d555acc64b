using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>The server refused a request (ERROR frame) or the connection failed; <see cref="ErrorCode"/> says which.</summary>
public class FastRelayException : Exception
{
    public FastRelayException(ErrorCode errorCode, string reason)
        : this(errorCode, reason, innerException: null)
    {
    }

    public FastRelayException(ErrorCode errorCode, string reason, Exception? innerException)
        : base(Describe(errorCode, reason), innerException)
    {
        ErrorCode = errorCode;
        Reason = reason;
    }

    /// <summary>The protocol error code (<see cref="ErrorCode.None"/> when the failure was not reported by the server).</summary>
    public ErrorCode ErrorCode { get; }

    /// <summary>The server's reason, or the client's description of the failure.</summary>
    public string Reason { get; }

    private static string Describe(ErrorCode code, string reason) =>
        code == ErrorCode.None ? reason : $"{reason} (error {(int)code} {code})";
}
