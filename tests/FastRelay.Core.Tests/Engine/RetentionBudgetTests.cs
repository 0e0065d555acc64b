using FastRelay.Core.Engine;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>The node-wide bound on retained history (<c>Retention:MaxBytes</c>).</summary>
public sealed class RetentionBudgetTests
{
    private const int Topics = 10;
    private const int Rounds = 30;

    private static RelayEngine Engine(long maxBytes) => new(new RelayOptions
    {
        Shards = 2,
        Retention = new RetentionOptions { MaxEvents = 1024, MaxBytes = maxBytes },
    });

    private static async Task<InProcessClient> Connected(RelayEngine engine)
    {
        var c = new InProcessClient(engine);
        await c.HelloAsync();
        return c;
    }

    /// <summary>Subscribes to t.0 (to learn its epoch), leaves, then publishes 1 KB events round-robin over the topics.</summary>
    private static async Task<ulong> PublishRounds(RelayEngine engine)
    {
        var watcher = await Connected(engine);
        var subscribed = await watcher.SubscribeAsync("t.0");
        watcher.Session.OnTransportClosed();
        var pub = await Connected(engine);
        var payload = new byte[1000];
        for (int round = 0; round < Rounds; round++)
        {
            for (int t = 0; t < Topics; t++)
            {
                await pub.PublishAsync($"t.{t}", payload);
            }
        }

        await engine.QuiesceAsync();
        return subscribed.Epoch;
    }

    [Fact]
    public async Task Past_the_budget_the_oldest_history_goes_from_every_topic_and_the_newest_stays()
    {
        const long Budget = 64 * 1024;
        using var engine = Engine(Budget);
        ulong epoch = await PublishRounds(engine);

        Assert.InRange(engine.RetainedBytes, Budget / 2, Budget); // bounded, and not emptied
        Assert.True(engine.RetentionEvicted > 0);

        // t.0's early history is gone: resuming from its start is NOT_RECOVERED...
        var early = await Connected(engine);
        early.Send(new Envelope(FrameType.Sub).WithRequestId(1).WithTopic("t.0").WithEpoch(epoch).WithSeq(0));
        Assert.Equal(FrameType.NotRecovered, (await early.ReceiveAsync()).Type);

        // ...while its latest event is still there to replay.
        var recent = await Connected(engine);
        recent.Send(new Envelope(FrameType.Sub).WithRequestId(2).WithTopic("t.0").WithEpoch(epoch).WithSeq(Rounds - 1));
        Assert.Equal(FrameType.Recovered, (await recent.ReceiveAsync()).Type);
        Assert.Equal((ulong)Rounds, (await recent.ReceiveAsync()).Seq);
    }

    [Fact]
    public async Task Without_a_budget_every_topic_keeps_its_whole_history()
    {
        using var engine = Engine(maxBytes: 0);
        ulong epoch = await PublishRounds(engine);

        Assert.Equal(0, engine.RetentionEvicted);
        Assert.True(engine.RetainedBytes >= Topics * Rounds * 1000L);
        var all = await Connected(engine);
        all.Send(new Envelope(FrameType.Sub).WithRequestId(1).WithTopic("t.0").WithEpoch(epoch).WithSeq(0));
        Assert.Equal(FrameType.Recovered, (await all.ReceiveAsync()).Type);
    }

    [Fact]
    public void A_negative_budget_is_refused_naming_the_setting()
    {
        var ex = Assert.Throws<ArgumentException>(() => new RetentionOptions { MaxBytes = -1 }.Validate());
        Assert.Contains("Retention:MaxBytes", ex.Message);
    }
}
