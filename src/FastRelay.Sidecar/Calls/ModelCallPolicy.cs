namespace FastRelay.Sidecar.Calls;

/// <summary>Deadlines and retries for calls to one model target.</summary>
/// <remarks>
/// <see cref="Timeout"/> is hard: it bounds every attempt, backoff and retry on this target together. Retries happen
/// only before the first token (a retry after it would stream the reply twice) and only for transient failures.
/// </remarks>
public sealed record ModelCallPolicy
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    public static ModelCallPolicy Default { get; } = new();

    /// <summary>Hard limit for the whole call on this target: attempts, backoff and streaming (default 10 s).</summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>Longest wait for the first token of one attempt (a transient failure: retried); null = only <see cref="Timeout"/>.</summary>
    public TimeSpan? FirstTokenTimeout { get; init; }

    /// <summary>Longest gap between tokens once streaming (a stall ends the call, degraded); null = only <see cref="Timeout"/>.</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>Attempts after the first, for transient failures before the first token.</summary>
    public int MaxRetries { get; init; } = 2;

    /// <summary>Backoff before retry n is drawn from [d/2, d] with d = min(<see cref="BackoffMax"/>, <see cref="BackoffBase"/>·2ⁿ).</summary>
    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The pause before retry <paramref name="retry"/> (0-based) given a uniform draw in [0, 1).</summary>
    public TimeSpan Backoff(int retry, double random01)
    {
        double ceiling = Math.Min(BackoffMax.TotalMilliseconds, BackoffBase.TotalMilliseconds * Math.Pow(2, Math.Min(retry, 30)));
        return TimeSpan.FromMilliseconds((ceiling / 2) + (ceiling / 2 * random01));
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(Timeout)} must be positive (was {Timeout})");
        }

        if (FirstTokenTimeout is { } first && first <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(FirstTokenTimeout)} must be positive (was {first})");
        }

        if (IdleTimeout is { } idle && idle <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(IdleTimeout)} must be positive (was {idle})");
        }

        if (MaxRetries < 0)
        {
            throw new ArgumentException($"{nameof(MaxRetries)} must not be negative (was {MaxRetries})");
        }

        if (BackoffBase < TimeSpan.Zero || BackoffMax < BackoffBase)
        {
            throw new ArgumentException($"{nameof(BackoffBase)} must be ≥ 0 and ≤ {nameof(BackoffMax)} (were {BackoffBase} and {BackoffMax})");
        }
    }
}
