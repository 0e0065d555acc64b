using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>The server is overloaded (BACKOFF): the publish was NOT accepted; retry after <see cref="RetryAfter"/>.</summary>
public sealed class FastRelayBackoffException : FastRelayException
{
    public FastRelayBackoffException(TimeSpan retryAfter, string reason)
        : base(ErrorCode.LimitExceeded, reason)
    {
        RetryAfter = retryAfter;
    }

    public TimeSpan RetryAfter { get; }
}
