using FastRelay.Core.Engine;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>An engine on a hand-held clock plus the members, publisher and drain every consumer-group test uses.</summary>
public abstract class GroupTestBase : IDisposable
{
    protected long _nowMs = 5_000_000;
    protected readonly RelayEngine _engine;

    protected GroupTestBase(int shards, int pendingCapacity)
    {
        _engine = new RelayEngine(new RelayOptions
        {
            Shards = shards,
            Groups = new GroupOptions { Lease = TimeSpan.FromSeconds(30), MaxDeliveries = 2, PendingCapacity = pendingCapacity },
        });
        _engine.ClockMs = () => Interlocked.Read(ref _nowMs);
    }

    public void Dispose()
    {
        _engine.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A client that joined <paramref name="group"/> on <paramref name="topic"/> (a topic or a pattern).</summary>
    private protected async Task<InProcessClient> JoinAsync(string id, uint credits, string topic, string group = "workers")
    {
        var c = new InProcessClient(_engine, id);
        await c.HelloAsync(clientId: id);
        c.Send(new Envelope(FrameType.Sub).WithRequestId(c.NextRequestId()).WithTopic(topic).WithGroup(group).WithCredits(credits));
        var ack = await c.ReceiveAsync();
        Assert.Equal(FrameType.Ack, ack.Type);
        Assert.Equal(topic, ack.Topic ?? topic);
        return c;
    }

    private protected async Task<InProcessClient> Publisher()
    {
        var p = new InProcessClient(_engine, "publisher");
        await p.HelloAsync(clientId: "publisher");
        return p;
    }

    /// <summary>Every EVENT queued for the client right now (after a barrier on every shard).</summary>
    private protected async Task<List<Received>> Drain(InProcessClient c)
    {
        await _engine.QuiesceAsync();
        var events = new List<Received>();
        while (c.Session.Outbox.TryDequeue(out var frame))
        {
            events.Add(Received.Decode(frame.Span));
            frame.Release();
        }

        return events;
    }
}
