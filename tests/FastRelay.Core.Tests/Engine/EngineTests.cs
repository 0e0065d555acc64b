using System.Buffers.Binary;
using System.Text;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class EngineTests : IDisposable
{
    private readonly RelayEngine _engine = new(new RelayOptions { Shards = 4, NodeName = "n1", OutboxCapacity = 65536, OutboxMaxBytes = 64L << 20 });

    public void Dispose() => _engine.Dispose();

    [Fact]
    public async Task Hello_is_answered_with_welcome_naming_client_tenant_and_node()
    {
        var client = new InProcessClient(_engine);
        var welcome = await client.HelloAsync(clientId: "agent-7");
        Assert.Equal(FrameType.Welcome, welcome.Type);
        Assert.Equal(1UL, welcome.RequestId);
        Assert.Equal("agent-7", welcome.ClientId);
        Assert.Equal("default", welcome.Tenant);
    }

    [Fact]
    public async Task Frames_before_hello_are_refused_and_the_session_closes()
    {
        var client = new InProcessClient(_engine);
        bool open = client.Send(new Envelope(FrameType.Pub).WithRequestId(5).WithTopic("a").WithPayload(new byte[1]));
        Assert.False(open);
        var error = await client.ReceiveAsync();
        Assert.Equal(FrameType.Error, error.Type);
        Assert.Equal(ErrorCode.Unauthorized, error.ErrorCode);
        Assert.Equal(5UL, error.RequestId);
        Assert.NotNull(client.Session.CloseReason);
    }

    [Fact]
    public async Task Malformed_envelope_gets_error_400_and_closes_only_that_session()
    {
        var bad = new InProcessClient(_engine);
        var good = new InProcessClient(_engine);
        await good.HelloAsync();
        await good.SubscribeAsync("room.1");

        Assert.False(bad.Session.OnEnvelope(new byte[] { 0xc1, 0x00, 0x13 }));
        var error = await bad.ReceiveAsync();
        Assert.Equal(ErrorCode.BadFrame, error.ErrorCode);
        Assert.Contains("malformed", error.Reason);

        // The healthy session publishes to a topic it subscribes to: it gets its ACK (control lane) and the EVENT.
        var frames = new[] { await good.PublishAsync("room.1", [1, 2, 3]), await good.ReceiveAsync() };
        var evt = Assert.Single(frames, f => f.Type == FrameType.Event);
        var ack = Assert.Single(frames, f => f.Type == FrameType.Ack);
        Assert.Equal(new byte[] { 1, 2, 3 }, evt.Payload);
        Assert.Equal(evt.Seq, ack.Seq);
    }

    [Fact]
    public async Task Publish_ack_carries_the_seq_the_subscribers_see()
    {
        var sub = new InProcessClient(_engine);
        var pub = new InProcessClient(_engine);
        await sub.HelloAsync();
        await pub.HelloAsync(clientId: "writer");
        var subscribed = await sub.SubscribeAsync("orders.eu");
        Assert.Equal(FrameType.Ack, subscribed.Type);
        Assert.Equal("orders.eu", subscribed.Topic);
        Assert.Equal(0UL, subscribed.Seq);

        for (int i = 1; i <= 3; i++)
        {
            var ack = await pub.PublishAsync("orders.eu", Encoding.UTF8.GetBytes($"m{i}"));
            Assert.Equal(FrameType.Ack, ack.Type);
            Assert.Equal((ulong)i, ack.Seq);
            Assert.Equal(subscribed.Epoch, ack.Epoch);

            var evt = await sub.ReceiveAsync();
            Assert.Equal(FrameType.Event, evt.Type);
            Assert.Equal((ulong)i, evt.Seq);
            Assert.Equal(ack.Epoch, evt.Epoch);
            Assert.Equal("writer", evt.ClientId);
            Assert.Equal($"m{i}", Encoding.UTF8.GetString(evt.Payload));
        }
    }

    [Fact]
    public async Task Subscribing_twice_is_acknowledged_without_double_delivery_and_unknown_unsubscribes_get_404()
    {
        var c = new InProcessClient(_engine);
        await c.HelloAsync();
        await c.SubscribeAsync("a.b");
        var again = await c.SubscribeAsync("a.b");
        Assert.Equal(FrameType.Ack, again.Type);
        Assert.Equal(1, c.Session.SubscriptionCount);
        var first = await c.PublishAsync("a.b", [1]); // this connection's ACK and its one EVENT, in either order
        var second = await c.ReceiveAsync();
        Assert.Equal([FrameType.Ack, FrameType.Event], new[] { first.Type, second.Type }.Order());
        c.Send(new Envelope(FrameType.Ping).WithRequestId(1000));
        Assert.Equal(FrameType.Pong, (await c.ReceiveAsync()).Type); // exactly one EVENT was queued

        c.Send(new Envelope(FrameType.Unsub).WithRequestId(99).WithTopic("x.y"));
        var missing = await c.ReceiveAsync();
        Assert.Equal(ErrorCode.NotFound, missing.ErrorCode);
        Assert.Equal(99UL, missing.RequestId);
    }

    [Fact]
    public async Task Invalid_topic_and_missing_payload_are_refused_without_closing()
    {
        var c = new InProcessClient(_engine);
        await c.HelloAsync();
        var badTopic = await c.PublishAsync("a..b", [1]);
        Assert.Equal(ErrorCode.BadFrame, badTopic.ErrorCode);
        Assert.Contains("invalid topic", badTopic.Reason);

        Assert.True(c.Send(new Envelope(FrameType.Pub).WithRequestId(42).WithTopic("a.b")));
        var noPayload = await c.ReceiveAsync();
        Assert.Equal(ErrorCode.BadFrame, noPayload.ErrorCode);
        Assert.Equal(42UL, noPayload.RequestId);

        var ok = await c.PublishAsync("a.b", [1]);
        Assert.Equal(FrameType.Ack, ok.Type);
    }

    [Fact]
    public async Task Unsubscribed_session_stops_receiving()
    {
        var sub = new InProcessClient(_engine);
        var pub = new InProcessClient(_engine);
        await sub.HelloAsync();
        await pub.HelloAsync();
        await sub.SubscribeAsync("t");
        sub.Send(new Envelope(FrameType.Unsub).WithRequestId(77).WithTopic("t"));
        var ack = await sub.ReceiveAsync();
        Assert.Equal(FrameType.Ack, ack.Type);
        Assert.Equal(77UL, ack.RequestId);

        await pub.PublishAsync("t", [9]);
        // A PING after the publish: its PONG is the next frame only if no EVENT was queued before it.
        sub.Send(new Envelope(FrameType.Ping).WithRequestId(78));
        var next = await sub.ReceiveAsync();
        Assert.Equal(FrameType.Pong, next.Type);
        Assert.Equal(78UL, next.RequestId);
    }

    [Fact]
    public async Task A_drain_during_the_handshake_sends_nothing_before_the_WELCOME_and_the_DRAIN_right_after_it()
    {
        var early = new InProcessClient(_engine);
        early.Session.Drain(250, "node-b"); // accepted, no HELLO yet (a WebSocket may not even have its 101)
        Assert.False(early.Session.Outbox.TryDequeue(out _), "a frame was queued before the handshake");

        var welcome = await early.HelloAsync();
        Assert.Equal(FrameType.Welcome, welcome.Type);
        var drain = await early.ReceiveAsync();
        Assert.Equal((FrameType.Drain, 250u), (drain.Type, drain.RetryAfterMs));

        // An open session gets exactly one DRAIN, however often the node asks.
        var open = new InProcessClient(_engine);
        await open.HelloAsync();
        open.Session.Drain(100, null);
        open.Session.Drain(100, null);
        Assert.Equal(FrameType.Drain, (await open.ReceiveAsync()).Type);
        open.Send(new Envelope(FrameType.Ping).WithRequestId(3));
        Assert.Equal(FrameType.Pong, (await open.ReceiveAsync()).Type);
    }

    [Fact]
    public async Task Many_publishers_on_many_topics_keep_per_topic_order_and_per_publisher_fifo()
    {
        const int topics = 16;
        const int publishers = 4;
        const int perPublisherPerTopic = 200;
        var subscriber = new InProcessClient(_engine);
        await subscriber.HelloAsync();
        var shardsUsed = new HashSet<int>();
        for (int t = 0; t < topics; t++)
        {
            await subscriber.SubscribeAsync($"orders.{t}");
            shardsUsed.Add(_engine.ShardIndexOf(0, Encoding.UTF8.GetBytes($"orders.{t}")));
        }

        Assert.Equal(_engine.ShardCount, shardsUsed.Count); // the topics really spread over every shard

        var tasks = Enumerable.Range(0, publishers).Select(p => Task.Run(async () =>
        {
            var client = new InProcessClient(_engine, $"pub{p}");
            await client.HelloAsync(clientId: $"p{p}");
            var payload = new byte[8];
            for (int i = 0; i < perPublisherPerTopic; i++)
            {
                for (int t = 0; t < topics; t++)
                {
                    BinaryPrimitives.WriteInt32BigEndian(payload, p);
                    BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), i);
                    // Four publishers at once, so the shards see real interleaving; a BACKOFF is retried, so
                    // every (publisher, i) is sequenced exactly once and in order.
                    await client.PublishAcceptedAsync(new Envelope(FrameType.Pub).WithTopic($"orders.{t}").WithPayload(payload));
                }
            }
        })).ToArray();

        var lastSeq = new ulong[topics];
        var lastFromPublisher = new int[topics, publishers];
        for (int t = 0; t < topics; t++)
        {
            for (int p = 0; p < publishers; p++)
            {
                lastFromPublisher[t, p] = -1;
            }
        }

        int expected = topics * publishers * perPublisherPerTopic;
        for (int n = 0; n < expected; n++)
        {
            var e = await subscriber.ReceiveAsync();
            Assert.Equal(FrameType.Event, e.Type);
            int t = int.Parse(e.Topic!.AsSpan("orders.".Length));
            Assert.Equal(lastSeq[t] + 1, e.Seq); // per-topic total order, no gap
            lastSeq[t] = e.Seq;
            int p = BinaryPrimitives.ReadInt32BigEndian(e.Payload);
            int i = BinaryPrimitives.ReadInt32BigEndian(e.Payload.AsSpan(4));
            Assert.Equal(lastFromPublisher[t, p] + 1, i); // per-publisher FIFO within the topic
            lastFromPublisher[t, p] = i;
        }

        await Task.WhenAll(tasks);
        Assert.All(lastSeq, s => Assert.Equal((ulong)(publishers * perPublisherPerTopic), s));
    }

    [Fact]
    public async Task Closed_session_is_removed_from_its_topics()
    {
        var sub = new InProcessClient(_engine);
        await sub.HelloAsync();
        await sub.SubscribeAsync("presence.x");
        var before = await _engine.GetTopicPositionAsync(0, "presence.x");
        Assert.Equal(1, before!.Value.Subscribers);

        sub.Session.OnTransportClosed();
        var after = await _engine.GetTopicPositionAsync(0, "presence.x");
        Assert.Equal(0, after!.Value.Subscribers);
        Assert.Equal(0, _engine.SessionsOpen);
    }
}
