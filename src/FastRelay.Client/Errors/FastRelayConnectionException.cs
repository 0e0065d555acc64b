using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// The connection is not usable: it could not be opened, it was lost, the server closed it, or the client closed it.
/// <see cref="FastRelayException.ErrorCode"/> carries the server's connection-level ERROR code when there was one.
/// </summary>
public sealed class FastRelayConnectionException : FastRelayException
{
    public FastRelayConnectionException(ErrorCode errorCode, string reason, Exception? innerException = null)
        : base(errorCode, reason, innerException)
    {
    }
}
