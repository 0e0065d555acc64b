using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace FastRelay.Core.FlowControl;

/// <summary>
/// A token bucket: <c>rate</c> tokens a second, holding at most <c>burst</c>. Allocation-free. Not thread-safe:
/// a connection's bucket is used by its read loop alone; shared buckets go through <see cref="SharedTokenBucket"/>.
/// </summary>
public struct TokenBucket
{
    private readonly double _ratePerTick;
    private readonly double _burst;
    private double _tokens;
    private long _lastTicks;

    public TokenBucket(double ratePerSecond, double burst)
    {
        _ratePerTick = ratePerSecond / Stopwatch.Frequency;
        _burst = Math.Max(1, burst);
        _tokens = _burst;
        _lastTicks = Stopwatch.GetTimestamp();
        IsLimited = ratePerSecond > 0;
    }

    /// <summary>False for an unlimited bucket (rate 0): every take succeeds.</summary>
    public bool IsLimited { get; }

    /// <summary>Takes one token; when none is left, says how long until one will be.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTake(long nowTicks, out uint retryAfterMs)
    {
        retryAfterMs = 0;
        if (!IsLimited)
        {
            return true;
        }

        _tokens = Math.Min(_burst, _tokens + ((nowTicks - _lastTicks) * _ratePerTick));
        _lastTicks = nowTicks;
        if (_tokens >= 1)
        {
            _tokens -= 1;
            return true;
        }

        double ticksToOne = (1 - _tokens) / _ratePerTick;
        retryAfterMs = (uint)Math.Clamp(Math.Ceiling(ticksToOne * 1000 / Stopwatch.Frequency), 1, 60_000);
        return false;
    }
}

/// <summary>A token bucket shared by many threads (a tenant's publish rate, a listener's accept rate).</summary>
public sealed class SharedTokenBucket
{
    private readonly Lock _lock = new();
    private TokenBucket _bucket;

    public SharedTokenBucket(double ratePerSecond, double burst) => _bucket = new TokenBucket(ratePerSecond, burst);

    public bool IsLimited => _bucket.IsLimited;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTake(long nowTicks, out uint retryAfterMs)
    {
        if (!_bucket.IsLimited)
        {
            retryAfterMs = 0;
            return true;
        }

        lock (_lock)
        {
            return _bucket.TryTake(nowTicks, out retryAfterMs);
        }
    }
}
