using System.Diagnostics;
using System.Runtime.CompilerServices;
using HdrHistogram;

namespace FastRelay.LoadGen.Measurement;

/// <summary>
/// Publish→deliver latency of one run in nanoseconds: one HdrHistogram per receiving thread (no locks, no
/// sharing while recording), merged when the run is over.
/// </summary>
internal sealed class LatencyRecorder
{
    /// <summary>Largest latency tracked (60 s); larger values are clamped to it.</summary>
    public const long HighestTrackableNanoseconds = 60_000_000_000;
    private const int SignificantDigits = 3;

    [ThreadStatic]
    private static LongHistogram? t_histogram;
    [ThreadStatic]
    private static LatencyRecorder? t_owner;

    private static readonly double s_nanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    private readonly List<LongHistogram> _histograms = [];

    /// <summary>The calling thread's histogram for this run (created on the thread's first use).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public LongHistogram ForCurrentThread()
    {
        if (t_owner == this)
        {
            return t_histogram!;
        }

        return Create();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private LongHistogram Create()
    {
        var histogram = NewHistogram();
        lock (_histograms)
        {
            _histograms.Add(histogram);
        }

        t_histogram = histogram;
        t_owner = this;
        return histogram;
    }

    /// <summary>Records <paramref name="elapsedTicks"/> (Stopwatch ticks) on the calling thread's histogram.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Record(LongHistogram histogram, long elapsedTicks)
    {
        long ns = (long)(elapsedTicks * s_nanosecondsPerTick);
        histogram.RecordValue(Math.Clamp(ns, 0, HighestTrackableNanoseconds));
    }

    /// <summary>All threads' histograms added together. Call once recording has stopped.</summary>
    public LongHistogram Merge()
    {
        var total = NewHistogram();
        lock (_histograms)
        {
            foreach (var histogram in _histograms)
            {
                total.Add(histogram);
            }
        }

        return total;
    }

    private static LongHistogram NewHistogram() => new(HighestTrackableNanoseconds, SignificantDigits);
}
