using System.Runtime.InteropServices;
using FastRelay.LoadGen.Wire;

namespace FastRelay.LoadGen.Measurement;

/// <summary>Counters and switches shared by every simulated client of one run.</summary>
internal sealed class RunState
{
    private PaddedLong _delivered;
    private long _errors;
    private long _unexpectedCloses;
    private string? _firstError;

    public LatencyRecorder Latency { get; } = new();

    /// <summary>Latency samples are recorded only inside the measurement window.</summary>
    public volatile bool Recording;

    /// <summary>Set when the run tears its connections down: closes after this are expected.</summary>
    public volatile bool Stopping;

    /// <summary>Messages received by all subscribers since the run started.</summary>
    public long Delivered => Volatile.Read(ref _delivered.Value);

    public long Errors => Volatile.Read(ref _errors);

    public long UnexpectedCloses => Volatile.Read(ref _unexpectedCloses);

    public string? FirstError => Volatile.Read(ref _firstError);

    public void AddDelivered(long count) => Interlocked.Add(ref _delivered.Value, count);

    public void CountError(in Inbound message) => Fail($"server error {message.ErrorCode}: {message.Text}", ref _errors);

    public void CountClose(Exception? error)
    {
        if (!Stopping)
        {
            Fail(error is null ? "connection closed by the server" : $"connection failed: {error.Message}", ref _unexpectedCloses);
        }
    }

    private void Fail(string text, ref long counter)
    {
        Interlocked.Increment(ref counter);
        Interlocked.CompareExchange(ref _firstError, text, null);
    }

    /// <summary>A counter alone on its cache line: every receive loop adds to it.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct PaddedLong
    {
        [FieldOffset(64)]
        public long Value;
    }
}
