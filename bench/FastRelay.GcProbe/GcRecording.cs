using Microsoft.Diagnostics.Tracing;

namespace FastRelay.GcProbe;

internal enum GcRecordKind : byte
{
    Start,
    AllocationTick,
    HeapStats,
}

/// <summary>One GC event: Start (Value = generation), AllocationTick (Value = kind, Bytes, type), HeapStats (Bytes = total heap).</summary>
internal readonly record struct GcRecord(DateTime At, GcRecordKind Kind, int Value, long Bytes, string TypeName, ulong TypeId);

/// <summary>One EventCounters sample: an Increment (per interval) or a Mean, over IntervalSec seconds.</summary>
internal readonly record struct CounterRecord(DateTime At, string Name, double Value, double IntervalSeconds);

/// <summary>Everything the session saw, appended from the parser thread and read once it has stopped.</summary>
internal sealed class GcRecording
{
    private readonly List<GcRecord> _records = [];
    private readonly List<CounterRecord> _counters = [];
    private readonly Dictionary<string, long> _seen = [];

    public void Add(GcRecord record) => _records.Add(record);

    public void Counter(CounterRecord record) => _counters.Add(record);

    public void Seen(TraceEvent e)
    {
        string key = $"{e.ProviderName}/{e.EventName}";
        _seen[key] = _seen.GetValueOrDefault(key) + 1;
    }

    public GcWindow Window(DateTime begin, DateTime end) => GcWindow.Cut(begin, end, _records, _counters, _seen);
}
