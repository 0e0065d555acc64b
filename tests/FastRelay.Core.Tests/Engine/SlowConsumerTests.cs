using System.Text;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>One subscriber stops reading: what it loses, what it keeps, and when it is cut off.</summary>
public sealed class SlowConsumerTests
{
    private const int SoftCap = 64 * 1024;

    private static RelayEngine Engine(TimeSpan grace, long hardCap = 4 * SoftCap) => new(new RelayOptions
    {
        Shards = 1,
        MaxMessageBytes = 4096,
        OutboxMaxBytes = SoftCap,
        OutboxHardMaxBytes = hardCap,
        SlowConsumerGrace = grace,
    });

    private static async Task<InProcessClient> Connected(RelayEngine engine, string id)
    {
        var c = new InProcessClient(engine, id);
        await c.HelloAsync(clientId: id);
        return c;
    }

    private static void Publish(InProcessClient pub, string topic, byte[] payload, EventFlags flags) =>
        pub.Send(new Envelope(FrameType.Pub).WithTopic(topic).WithPayload(payload).WithFlags(flags));

    /// <summary>Publishes and waits until the fast subscriber has it: the fast one never falls behind.</summary>
    private static async Task PublishInStep(InProcessClient pub, InProcessClient fast, byte[] payload, EventFlags flags, ulong expectedSeq)
    {
        Publish(pub, "feed", payload, flags);
        Assert.Equal(expectedSeq, (await fast.ReceiveAsync()).Seq);
    }

    [Fact]
    public async Task Slow_subscriber_loses_only_droppable_events_keeps_critical_ones_and_gets_partials_merged_whole()
    {
        using var engine = Engine(grace: TimeSpan.FromMinutes(1));
        var pub = await Connected(engine, "pub");
        var fast = await Connected(engine, "fast");
        var slow = await Connected(engine, "slow");
        await fast.SubscribeAsync("feed");
        await slow.SubscribeAsync("feed");
        var kb = new byte[1024];

        // 1. Critical events take the slow consumer over its soft cap (it is not reading).
        ulong seq = 0;
        for (int i = 0; i < 80; i++)
        {
            await PublishInStep(pub, fast, kb, EventFlags.None, ++seq);
        }

        // 2. Droppable events: dropped for the slow one only.
        for (int i = 0; i < 20; i++)
        {
            await PublishInStep(pub, fast, kb, EventFlags.Droppable, ++seq);
        }

        // 3. An AI token stream: partials, then the final.
        var tokens = Enumerable.Range(0, 30).Select(i => $"tok{i} ").ToArray();
        foreach (var t in tokens)
        {
            await PublishInStep(pub, fast, Encoding.UTF8.GetBytes(t), EventFlags.Partial | EventFlags.Droppable, ++seq);
        }

        await PublishInStep(pub, fast, "[end]"u8.ToArray(), EventFlags.Final, ++seq);
        Assert.Equal(131UL, seq); // the fast subscriber got everything, in order

        Assert.Equal(20, slow.Session.Outbox.Dropped);
        Assert.Null(slow.Session.CloseReason);

        // The slow one now reads: all 80 critical events, no droppable one, the token stream whole, then the final.
        for (ulong expected = 1; expected <= 80; expected++)
        {
            Assert.Equal(expected, (await slow.ReceiveAsync()).Seq);
        }

        var text = new StringBuilder();
        Received e;
        bool merged = false;
        while ((e = await slow.ReceiveAsync()).Flags.HasFlag(EventFlags.Partial))
        {
            text.Append(Encoding.UTF8.GetString(e.Payload));
            merged |= e.Flags.HasFlag(EventFlags.Coalesced);
        }

        Assert.Equal(string.Concat(tokens), text.ToString());
        Assert.True(merged, "partials queued over the cap should have been merged");
        Assert.True(slow.Session.Outbox.Coalesced > 0);
        Assert.Equal(131UL, e.Seq);
        Assert.Equal("[end]", Encoding.UTF8.GetString(e.Payload));
    }

    [Fact]
    public async Task A_consumer_that_stays_over_its_cap_past_the_grace_period_is_closed_with_the_reason_and_others_continue()
    {
        using var engine = Engine(grace: TimeSpan.FromMilliseconds(200));
        var pub = await Connected(engine, "pub");
        var fast = await Connected(engine, "fast");
        var slow = await Connected(engine, "slow");
        await fast.SubscribeAsync("feed");
        await slow.SubscribeAsync("feed");
        var kb = new byte[1024];

        // Keep publishing (and keep the fast reader reading) until the slow one is cut off; bounded.
        ulong received = 0;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (slow.Session.CloseReason is null)
        {
            deadline.Token.ThrowIfCancellationRequested();
            var ack = await pub.PublishAsync("feed", kb);
            Assert.Equal(FrameType.Ack, ack.Type);
            Assert.Equal(++received, (await fast.ReceiveAsync()).Seq);
        }

        Assert.Equal(SessionCloseKind.SlowConsumer, slow.Session.CloseReason!.Kind);
        Assert.Contains("slow consumer", slow.Session.CloseReason.Reason);
        Assert.Equal(1, engine.SlowConsumers);

        // Delivery to everyone else goes on.
        var after = await pub.PublishAsync("feed", kb);
        Assert.Equal(after.Seq, (await fast.ReceiveAsync()).Seq);
    }

    [Fact]
    public async Task Reaching_the_hard_cap_closes_at_once()
    {
        using var engine = Engine(grace: TimeSpan.FromMinutes(5), hardCap: 2 * SoftCap);
        var pub = await Connected(engine, "pub");
        var slow = await Connected(engine, "slow");
        await slow.SubscribeAsync("feed");
        var kb = new byte[1024];
        for (int i = 0; i < 3 * SoftCap / 1024; i++)
        {
            Publish(pub, "feed", kb, EventFlags.None);
        }

        await engine.QuiesceAsync();
        Assert.Equal(SessionCloseKind.SlowConsumer, slow.Session.CloseReason?.Kind);
    }
}
