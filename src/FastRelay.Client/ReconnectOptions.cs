namespace FastRelay.Client;

/// <summary>
/// Automatic reconnect after a dropped connection (off by default). The client reconnects with exponential backoff and
/// jitter, says HELLO with the same client id, and resubscribes every subscription from the last event it delivered.
/// It does not reconnect after <see cref="FastRelayClient.CloseAsync"/>, after a 401, or when the first connect fails.
/// </summary>
public sealed class ReconnectOptions
{
    internal static readonly ReconnectOptions Disabled = new();

    public bool Enabled { get; init; }

    /// <summary>The delay before the first attempt; each further attempt doubles it, up to <see cref="MaxDelay"/>.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The share of each delay that is random, 0..1: the wait is delay × (1 − Jitter × r), r uniform in [0, 1).
    /// 1 is "full jitter" (anywhere from 0 to the delay), which spreads a crowd of clients best.
    /// </summary>
    public double Jitter { get; init; } = 0.5;

    /// <summary>Attempts before giving up (the client then closes with the last error); null = unlimited.</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>The wait before attempt <paramref name="attempt"/> (0-based); <paramref name="random"/> in [0, 1).</summary>
    internal TimeSpan DelayBefore(int attempt, double random)
    {
        double ceiling = Math.Min(MaxDelay.Ticks, InitialDelay.Ticks * Math.Pow(2, Math.Min(attempt, 62)));
        return TimeSpan.FromTicks((long)(ceiling * (1 - (Jitter * random))));
    }

    internal void Validate()
    {
        if (InitialDelay < TimeSpan.Zero || MaxDelay < InitialDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDelay), MaxDelay, "Reconnect: InitialDelay must be ≥ 0 and MaxDelay ≥ InitialDelay.");
        }

        if (Jitter is < 0 or > 1 || double.IsNaN(Jitter))
        {
            throw new ArgumentOutOfRangeException(nameof(Jitter), Jitter, "Reconnect: Jitter must be between 0 and 1.");
        }

        if (MaxAttempts is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "Reconnect: MaxAttempts must be at least 1 (null = unlimited).");
        }
    }
}
