using System.Buffers;
using FastRelay.Core.Sessions;
using MessagePack;

namespace FastRelay.Core.Engine;

/// <summary>
/// Topics under <c>$sys.</c> belong to the server: clients may subscribe (if their token allows) but not publish.
/// <c>$sys.connections</c> carries connection lifecycle events of the tenant.
/// </summary>
public static class SystemTopics
{
    public const string Prefix = "$sys.";

    public const string Connections = "$sys.connections";

    /// <summary>Node statistics published periodically by the server (see <see cref="StatsPayload"/>).</summary>
    public const string Stats = "$sys.stats";

    internal static ReadOnlySpan<byte> PrefixUtf8 => "$sys."u8;

    internal static bool IsReserved(ReadOnlySpan<byte> topic) => topic.StartsWith(PrefixUtf8);

    /// <summary>
    /// Payload of a lifecycle event: a MessagePack map with string keys
    /// {event: "connected"|"disconnected", client_id, session, transport, remote, reason?}.
    /// </summary>
    /// <remarks>
    /// Written into a buffer of the calling thread, not a new array: every connect and disconnect publishes one, and
    /// the event's frame copies it at once. The memory is valid until the thread's next call.
    /// </remarks>
    internal static ReadOnlyMemory<byte> LifecyclePayload(Session session, bool connected, string? reason)
    {
        var buffer = t_lifecycle ??= new ArrayBufferWriter<byte>(256);
        buffer.ResetWrittenCount();
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(reason is null ? 5 : 6);
        w.Write("event");
        w.Write(connected ? "connected" : "disconnected");
        w.Write("client_id");
        w.Write(session.ClientId);
        w.Write("session");
        w.Write(session.Id);
        w.Write("transport");
        w.Write(session.Transport);
        w.Write("remote");
        w.Write(session.RemoteEndPoint);
        if (reason is not null)
        {
            w.Write("reason");
            w.Write(reason);
        }

        w.Flush();
        return buffer.WrittenMemory;
    }

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_lifecycle;

    private static readonly byte[] s_connectionsUtf8 = "$sys.connections"u8.ToArray();
    private static readonly byte[] s_statsUtf8 = "$sys.stats"u8.ToArray();

    /// <summary>The topic's UTF-8 bytes: shared for the server's own topics, new for any other.</summary>
    internal static byte[] TopicUtf8(string topic) => topic switch
    {
        Connections => s_connectionsUtf8,
        Stats => s_statsUtf8,
        _ => System.Text.Encoding.UTF8.GetBytes(topic),
    };

    /// <summary>
    /// Payload of a <c>$sys.stats</c> event: a MessagePack map with string keys and integer values — node counters
    /// (sessions, published, delivered, backoffs, errors, slow consumers) and process figures (GC allocated bytes,
    /// collections per generation, working set, CPU time), so the allocation rate per delivered event can be read
    /// off a running binary. The GC heap figures at the end split resident memory into managed heap and the rest:
    /// the heap now (live objects plus garbage not yet collected), the heap and its fragmentation as the last GC left
    /// them, and the memory the GC has committed.
    /// </summary>
    public static byte[] StatsPayload(RelayEngine engine, string node, long uptimeMs)
    {
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var buffer = new ArrayBufferWriter<byte>(512);
        var w = new MessagePackWriter(buffer);
        var gc = GC.GetGCMemoryInfo();
        w.WriteMapHeader(21);
        w.Write("node"); w.Write(node);
        w.Write("uptime_ms"); w.Write(uptimeMs);
        w.Write("sessions"); w.Write(engine.SessionsOpen);
        w.Write("sessions_total"); w.Write(engine.SessionsTotal);
        w.Write("published"); w.Write(engine.Published);
        w.Write("delivered"); w.Write(engine.Delivered);
        w.Write("backoffs"); w.Write(engine.Backoffs);
        w.Write("errors"); w.Write(engine.Errors);
        w.Write("slow_consumers"); w.Write(engine.SlowConsumers);
        w.Write("retained_bytes"); w.Write(engine.RetainedBytes);
        w.Write("retention_evicted"); w.Write(engine.RetentionEvicted);
        w.Write("gc_allocated_bytes"); w.Write(GC.GetTotalAllocatedBytes(precise: false));
        w.Write("gc_gen0"); w.Write(GC.CollectionCount(0));
        w.Write("gc_gen1"); w.Write(GC.CollectionCount(1));
        w.Write("gc_gen2"); w.Write(GC.CollectionCount(2));
        w.Write("working_set_bytes"); w.Write(process.WorkingSet64);
        w.Write("gc_heap_bytes"); w.Write(GC.GetTotalMemory(forceFullCollection: false));
        w.Write("gc_last_heap_bytes"); w.Write(gc.HeapSizeBytes);
        w.Write("gc_last_fragmented_bytes"); w.Write(gc.FragmentedBytes);
        w.Write("gc_committed_bytes"); w.Write(gc.TotalCommittedBytes);
        w.Write("gc_index"); w.Write(gc.Index);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
