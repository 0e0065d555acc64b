using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>Connection settings for <see cref="FastRelayClient.ConnectAsync(Uri, FastRelayClientOptions?, CancellationToken)"/>.</summary>
public sealed class FastRelayClientOptions
{
    internal static readonly FastRelayClientOptions Default = new();

    /// <summary>The client id asked for in HELLO; the server may replace it (see <see cref="FastRelayClient.ClientId"/>).</summary>
    public string? ClientId { get; init; }

    /// <summary>The auth token sent in HELLO.</summary>
    public string? Token { get; init; }

    /// <summary>Limit for the transport connect plus the HELLO/WELCOME exchange.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a request (PUB with ack, SUB, UNSUB, PING) waits for its reply; <see cref="Timeout.InfiniteTimeSpan"/> waits forever.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest envelope sent or accepted, in bytes (the server's limit is usually the same 1 MiB default).</summary>
    public int MaxMessageBytes { get; init; } = ProtocolLimits.DefaultMaxMessageBytes;

    /// <summary>
    /// Events buffered per subscription before the consumer is declared slow (0 = unbounded). When the buffer is full,
    /// droppable events are dropped and counted; a critical event ends the subscription with
    /// <see cref="FastRelaySlowConsumerException"/>. The receive loop never waits for a consumer.
    /// </summary>
    public int SubscriptionBufferCapacity { get; init; } = 8192;

    /// <summary>Publishes queued for the socket before PublishAsync/PublishNoAckAsync wait for room (backpressure).</summary>
    public int SendQueueCapacity { get; init; } = 4096;

    /// <summary>Automatic reconnect with resume after a dropped connection; off by default (see <see cref="ReconnectOptions"/>).</summary>
    public ReconnectOptions Reconnect { get; init; } = ReconnectOptions.Disabled;

    /// <summary>
    /// Automatic retry of PublishAsync after BACKOFF (and, with Reconnect, after ERROR 503 from a draining node or a
    /// connection lost before the ACK), reusing one message id; on by default, <c>MaxAttempts = 1</c> disables it.
    /// </summary>
    public PublishRetryOptions PublishRetry { get; init; } = PublishRetryOptions.Default;

    internal void Validate()
    {
        if (ConnectTimeout <= TimeSpan.Zero && ConnectTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectTimeout), ConnectTimeout, "ConnectTimeout must be positive or Timeout.InfiniteTimeSpan.");
        }

        if (RequestTimeout <= TimeSpan.Zero && RequestTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "RequestTimeout must be positive or Timeout.InfiniteTimeSpan.");
        }

        if (MaxMessageBytes < 64 || MaxMessageBytes > ProtocolLimits.AbsoluteMaxMessageBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxMessageBytes), MaxMessageBytes, $"MaxMessageBytes must be between 64 and {ProtocolLimits.AbsoluteMaxMessageBytes}.");
        }

        if (SubscriptionBufferCapacity < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(SubscriptionBufferCapacity), SubscriptionBufferCapacity, "SubscriptionBufferCapacity must be 0 (unbounded) or positive.");
        }

        if (SendQueueCapacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(SendQueueCapacity), SendQueueCapacity, "SendQueueCapacity must be at least 1.");
        }

        ArgumentNullException.ThrowIfNull(Reconnect);
        Reconnect.Validate();
        ArgumentNullException.ThrowIfNull(PublishRetry);
        PublishRetry.Validate();
        Utf8Text.ThrowIfTooLong(ClientId, ProtocolLimits.MaxIdBytes, nameof(ClientId));
        Utf8Text.ThrowIfTooLong(Token, ProtocolLimits.MaxTokenBytes, nameof(Token));
    }
}
