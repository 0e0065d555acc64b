namespace FastRelay.Client;

/// <summary>
/// Automatic retry of <see cref="FastRelayClient.PublishAsync"/> when the server did not accept a publish: BACKOFF (rate
/// limit, full inbox), ERROR 503 (the node is draining) and, with <see cref="ReconnectOptions.Enabled"/>, a connection
/// lost before the ACK. On by default (5 attempts); <c>MaxAttempts = 1</c> turns it off. Every attempt carries the same
/// message id (one is generated when the application gave none), so a retry can never be delivered twice: the server's
/// dedup answers a repeat with the first ACK.
/// </summary>
public sealed class PublishRetryOptions
{
    internal static readonly PublishRetryOptions Default = new();

    /// <summary>Attempts in all, the first included; 1 disables retrying (BACKOFF then throws at once).</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The longest wait between two attempts.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(5);

    internal bool Enabled => MaxAttempts > 1;

    /// <summary>
    /// The wait before retry <paramref name="retry"/> (1-based) after a BACKOFF that asked for <paramref name="retryAfter"/>:
    /// the server's delay is the floor (no token is available before it), and on top of it a full-jitter share of the
    /// exponential part: retryAfter + r × retryAfter × (2^(retry−1) − 1), r uniform in [0, 1), capped at MaxDelay.
    /// </summary>
    internal TimeSpan DelayBefore(int retry, TimeSpan retryAfter, double random)
    {
        double baseTicks = Math.Max(retryAfter.Ticks, TimeSpan.TicksPerMillisecond);
        double growth = baseTicks * (Math.Pow(2, Math.Min(retry - 1, 30)) - 1);
        double ticks = Math.Min(MaxDelay.Ticks, baseTicks + (random * growth));
        return TimeSpan.FromTicks((long)ticks);
    }

    internal void Validate()
    {
        if (MaxAttempts < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "PublishRetry: MaxAttempts must be at least 1 (1 = no retry).");
        }

        if (MaxDelay < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDelay), MaxDelay, "PublishRetry: MaxDelay must be ≥ 0.");
        }
    }
}
