using System.Globalization;
using System.Text;
using System.Text.Json;

namespace FastRelay.GcProbe;

/// <summary>What the target collected and allocated between begin and end, as the probe prints it (one JSON line).</summary>
internal sealed class GcWindow
{
    private GcWindow()
    {
    }

    public double Seconds { get; private init; }
    public int[] Collections { get; } = new int[3];
    public Dictionary<string, int> Reasons { get; } = [];
    public long AllocationTicks { get; private set; }
    public long AllocationTickBytes { get; private set; }
    /// <summary>By allocation kind (small, large, pinned) and type: (ticks, bytes), largest first.</summary>
    public List<(string Type, long Ticks, long Bytes)> AllocationByType { get; } = [];
    public long HeapBytesAtEnd { get; private set; }
    /// <summary>EventCounters in the window by name: samples, sum of values, last value, seconds covered.</summary>
    public SortedDictionary<string, (int Samples, double Sum, double Last, double Covered)> Counters { get; } = new(StringComparer.Ordinal);
    public SortedDictionary<string, long> EventsSeen { get; } = new(StringComparer.Ordinal);

    public static GcWindow Cut(DateTime begin, DateTime end, List<GcRecord> records, List<CounterRecord> counters, Dictionary<string, long> seen)
    {
        var w = new GcWindow { Seconds = (end - begin).TotalSeconds };
        var byType = new Dictionary<string, (long Ticks, long Bytes)>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            if (r.At < begin || r.At > end)
            {
                continue;
            }

            switch (r.Kind)
            {
                case GcRecordKind.Start:
                    w.Collections[Math.Clamp(r.Value, 0, 2)]++;
                    w.Reasons[r.TypeName] = w.Reasons.GetValueOrDefault(r.TypeName) + 1;
                    break;
                case GcRecordKind.AllocationTick:
                    w.AllocationTicks++;
                    w.AllocationTickBytes += r.Bytes;
                    string kind = r.Value switch { 0 => "small", 1 => "large", 2 => "pinned", _ => "kind" + r.Value };
                    string type = string.IsNullOrEmpty(r.TypeName) || r.TypeName == "NULL" ? string.Create(CultureInfo.InvariantCulture, $"type id 0x{r.TypeId:x}") : r.TypeName;
                    string key = $"{kind}: {type}";
                    var (ticks, bytes) = byType.GetValueOrDefault(key);
                    byType[key] = (ticks + 1, bytes + r.Bytes);
                    break;
                case GcRecordKind.HeapStats:
                    w.HeapBytesAtEnd = r.Bytes;
                    break;
            }
        }

        w.AllocationByType.AddRange(byType.OrderByDescending(p => p.Value.Bytes).Select(p => (p.Key, p.Value.Ticks, p.Value.Bytes)));

        // A counter sample covers the interval that ends at its timestamp: count those ending inside the window.
        foreach (var c in counters)
        {
            if (c.At <= begin || c.At > end || double.IsNaN(c.Value))
            {
                continue;
            }

            var (samples, sum, _, covered) = w.Counters.GetValueOrDefault(c.Name);
            w.Counters[c.Name] = (samples + 1, sum + c.Value, c.Value, covered + c.IntervalSeconds);
        }

        foreach (var (name, count) in seen)
        {
            w.EventsSeen[name] = count;
        }

        return w;
    }

    public string ToJson(int pid)
    {
        using var stream = new MemoryStream();
        using (var j = new Utf8JsonWriter(stream))
        {
            j.WriteStartObject();
            j.WriteNumber("pid", pid);
            j.WriteNumber("window_s", Math.Round(Seconds, 3));
            j.WriteStartArray("gc_count");
            foreach (int n in Collections)
            {
                j.WriteNumberValue(n);
            }

            j.WriteEndArray();
            j.WriteStartObject("gc_reasons");
            foreach (var (reason, n) in Reasons)
            {
                j.WriteNumber(reason, n);
            }

            j.WriteEndObject();
            j.WriteNumber("allocation_ticks", AllocationTicks);
            j.WriteNumber("allocation_tick_bytes", AllocationTickBytes);
            j.WriteStartArray("allocation_by_type");
            foreach (var (type, ticks, bytes) in AllocationByType.Take(20))
            {
                j.WriteStartObject();
                j.WriteString("type", type);
                j.WriteNumber("ticks", ticks);
                j.WriteNumber("bytes", bytes);
                j.WriteEndObject();
            }

            j.WriteEndArray();
            j.WriteNumber("heap_bytes_at_end", HeapBytesAtEnd);
            j.WriteStartObject("counters");
            foreach (var (name, (samples, sum, last, covered)) in Counters)
            {
                j.WriteStartObject(name);
                j.WriteNumber("samples", samples);
                j.WriteNumber("sum", Math.Round(sum, 3));
                j.WriteNumber("last", Math.Round(last, 3));
                j.WriteNumber("covered_s", Math.Round(covered, 3));
                j.WriteEndObject();
            }

            j.WriteEndObject();
            j.WriteStartObject("events_seen");
            foreach (var (name, n) in EventsSeen)
            {
                j.WriteNumber(name, n);
            }

            j.WriteEndObject();
            j.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
