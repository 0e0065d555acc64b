using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class PatternSubscriptionTests : IDisposable
{
    private readonly RelayEngine _engine = new(new RelayOptions { Shards = 4, OutboxCapacity = 1 << 16 });

    public void Dispose() => _engine.Dispose();

    private async Task<InProcessClient> Connected()
    {
        var c = new InProcessClient(_engine);
        await c.HelloAsync();
        return c;
    }

    [Fact]
    public async Task Pattern_subscription_receives_topics_living_on_different_shards_each_in_order()
    {
        var agent = await Connected();
        var ack = await agent.SubscribeAsync("agents.*.tasks");
        Assert.Equal(FrameType.Ack, ack.Type);
        Assert.Equal("agents.*.tasks", ack.Topic);

        var topics = Enumerable.Range(0, 16).Select(i => $"agents.a{i}.tasks").ToArray();
        Assert.Equal(_engine.ShardCount, topics.Select(t => _engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(t))).Distinct().Count());

        var pub = await Connected();
        for (int round = 1; round <= 20; round++)
        {
            foreach (var topic in topics)
            {
                pub.Send(new Envelope(FrameType.Pub).WithTopic(topic).WithPayload(new[] { (byte)round }));
            }
        }

        // Not matching: one segment too many, another prefix.
        pub.Send(new Envelope(FrameType.Pub).WithTopic("agents.a1.b.tasks").WithPayload(new byte[1]));
        pub.Send(new Envelope(FrameType.Pub).WithTopic("people.a1.tasks").WithPayload(new byte[1]));

        var lastSeq = topics.ToDictionary(t => t, _ => 0UL);
        for (int n = 0; n < topics.Length * 20; n++)
        {
            var e = await agent.ReceiveAsync();
            Assert.Equal(FrameType.Event, e.Type);
            Assert.True(lastSeq.ContainsKey(e.Topic!), $"unexpected topic {e.Topic}");
            Assert.Equal(lastSeq[e.Topic!] + 1, e.Seq);
            Assert.Equal((byte)e.Seq, e.Payload[0]);
            lastSeq[e.Topic!] = e.Seq;
        }

        // Nothing else is queued: the next frame is the reply to a ping.
        agent.Send(new Envelope(FrameType.Ping).WithRequestId(777));
        Assert.Equal(FrameType.Pong, (await agent.ReceiveAsync()).Type);
    }

    [Fact]
    public async Task Tail_wildcard_matches_every_deeper_topic_and_a_direct_subscriber_gets_each_event_once()
    {
        var client = await Connected();
        await client.SubscribeAsync("doc.>");
        await client.SubscribeAsync("doc.1.title"); // direct as well
        var pub = await Connected();
        await pub.PublishAsync("doc.1.title", [1]);
        await pub.PublishAsync("doc.2", [2]);
        await pub.PublishAsync("doc", [3]); // '>' needs at least one more segment

        var first = await client.ReceiveAsync();
        var second = await client.ReceiveAsync();
        Assert.Equal(("doc.1.title", (byte)1), (first.Topic, first.Payload[0]));
        Assert.Equal(("doc.2", (byte)2), (second.Topic, second.Payload[0]));
        client.Send(new Envelope(FrameType.Ping).WithRequestId(5));
        Assert.Equal(FrameType.Pong, (await client.ReceiveAsync()).Type);
    }

    [Fact]
    public async Task Unsubscribing_a_pattern_stops_delivery_on_every_shard()
    {
        var client = await Connected();
        await client.SubscribeAsync("metrics.>");
        client.Send(new Envelope(FrameType.Unsub).WithRequestId(40).WithTopic("metrics.>"));
        var ack = await client.ReceiveAsync();
        Assert.Equal(FrameType.Ack, ack.Type);
        Assert.Equal(40UL, ack.RequestId);

        var pub = await Connected();
        for (int i = 0; i < 8; i++)
        {
            await pub.PublishAsync($"metrics.m{i}", [1]);
        }

        client.Send(new Envelope(FrameType.Ping).WithRequestId(41));
        Assert.Equal(FrameType.Pong, (await client.ReceiveAsync()).Type);
    }

    [Fact]
    public async Task Invalid_patterns_and_resume_on_a_pattern_are_refused()
    {
        var client = await Connected();
        var bad = await client.SubscribeAsync("a.>.b");
        Assert.Equal(ErrorCode.BadFrame, bad.ErrorCode);
        Assert.Contains("pattern", bad.Reason);

        client.Send(new Envelope(FrameType.Sub).WithRequestId(9).WithTopic("a.*").WithEpoch(1).WithSeq(1));
        var resume = await client.ReceiveAsync();
        Assert.Equal(ErrorCode.BadFrame, resume.ErrorCode);
        Assert.Equal(9UL, resume.RequestId);
    }

    [Fact]
    public async Task Disconnected_pattern_subscriber_is_dropped_from_every_shard()
    {
        var client = await Connected();
        await client.SubscribeAsync("x.*");
        client.Session.OnTransportClosed();
        var pub = await Connected();
        var ack = await pub.PublishAsync("x.1", [1]); // must not try to deliver to the closed session
        Assert.Equal(FrameType.Ack, ack.Type);
        Assert.Equal(0, client.Session.Outbox.Count);
    }
}
