using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace FastRelay.GcProbe;

/// <summary>
/// One EventPipe session on the target: the runtime provider's GC keyword at Verbose (GCStart/GCEnd,
/// GCHeapStats, GCAllocationTick every ~100 KB allocated) and the System.Runtime counters. Events are kept
/// with their timestamps and cut to the [begin, end] window afterwards, so late buffer flushes do not matter.
/// </summary>
internal sealed class GcSession : IDisposable
{
    private readonly EventPipeSession _session;
    private readonly EventPipeEventSource _source;
    private readonly Task _processing;
    private readonly GcRecording _recording = new();
    private DateTime _begin = DateTime.MaxValue;
    private DateTime _end = DateTime.MaxValue;

    private GcSession(EventPipeSession session, EventPipeEventSource source)
    {
        _session = session;
        _source = source;
        Hook(source, _recording);
        _processing = Task.Factory.StartNew(source.Process, TaskCreationOptions.LongRunning);
    }

    public static GcSession Start(int pid, int counterIntervalSeconds)
    {
        var client = new DiagnosticsClient(pid);
        var providers = new List<EventPipeProvider>
        {
            new("Microsoft-Windows-DotNETRuntime", EventLevel.Verbose, (long)ClrTraceEventParser.Keywords.GC),
        };
        if (counterIntervalSeconds > 0)
        {
            // The counters are computed by managed code inside the target: they allocate there (see docs/loadgen.md).
            providers.Add(new EventPipeProvider("System.Runtime", EventLevel.Informational, 0,
                new Dictionary<string, string> { ["EventCounterIntervalSec"] = counterIntervalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) }));
        }

        // No rundown: nothing here needs method/module maps, and a rundown costs the target CPU at stop.
        var session = client.StartEventPipeSession(providers, requestRundown: false, circularBufferMB: 64);
        try
        {
            return new GcSession(session, new EventPipeEventSource(session.EventStream));
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    public void Begin() => _begin = DateTime.UtcNow;

    public void End()
    {
        if (_begin == DateTime.MaxValue)
        {
            _begin = DateTime.UtcNow; // never opened: an empty window
        }

        _end = DateTime.UtcNow;
    }

    /// <summary>Stops the session (the runtime flushes what it buffered), waits for the parser, cuts the window.</summary>
    public async Task<GcWindow> StopAsync()
    {
        try
        {
            await _session.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (ServerNotAvailableException)
        {
            // the target exited: what was read so far still counts
        }

        await _processing.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return _recording.Window(_begin, _end);
    }

    private static void Hook(EventPipeEventSource source, GcRecording recording)
    {
        source.Clr.GCStart += e => recording.Add(new GcRecord(e.TimeStamp.ToUniversalTime(), GcRecordKind.Start, e.Depth, 0, e.Reason.ToString(), 0));
        source.Clr.GCAllocationTick += e => recording.Add(new GcRecord(
            e.TimeStamp.ToUniversalTime(), GcRecordKind.AllocationTick, (int)e.AllocationKind, e.AllocationAmount64, e.TypeName, (ulong)e.TypeID));
        source.Clr.GCHeapStats += e => recording.Add(new GcRecord(e.TimeStamp.ToUniversalTime(), GcRecordKind.HeapStats, 0, e.TotalHeapSize, "", 0));
        source.AllEvents += recording.Seen;
        source.Dynamic.All += e =>
        {
            if (e.EventName == "EventCounters" && e.PayloadValue(0) is IDictionary<string, object> outer && outer["Payload"] is IDictionary<string, object> counter)
            {
                string name = counter.TryGetValue("Name", out var n) ? n?.ToString() ?? "" : "";
                double value = counter.TryGetValue("Increment", out var inc) ? Convert.ToDouble(inc, System.Globalization.CultureInfo.InvariantCulture)
                    : counter.TryGetValue("Mean", out var mean) ? Convert.ToDouble(mean, System.Globalization.CultureInfo.InvariantCulture) : double.NaN;
                double interval = counter.TryGetValue("IntervalSec", out var iv) ? Convert.ToDouble(iv, System.Globalization.CultureInfo.InvariantCulture) : 0;
                recording.Counter(new CounterRecord(e.TimeStamp.ToUniversalTime(), name, value, interval));
            }
        };
    }

    public void Dispose()
    {
        _source.Dispose();
        _session.Dispose();
    }
}
