using System.Buffers.Binary;
using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class ResumeAndDedupTests
{
    private static RelayEngine Engine(int retention = 1024, TimeSpan? window = null) => new(new RelayOptions
    {
        Shards = 2,
        OutboxCapacity = 1 << 20,
        OutboxMaxBytes = 256L << 20,
        Retention = new RetentionOptions { MaxEvents = retention },
        Dedup = new DedupOptions { Window = window ?? TimeSpan.FromMinutes(2) },
    });

    private static async Task<InProcessClient> Connected(RelayEngine engine, string? clientId = null)
    {
        var c = new InProcessClient(engine);
        await c.HelloAsync(clientId: clientId);
        return c;
    }

    private static Envelope Resume(ulong requestId, string topic, ulong epoch, ulong seq) =>
        new Envelope(FrameType.Sub).WithRequestId(requestId).WithTopic(topic).WithEpoch(epoch).WithSeq(seq);

    [Fact]
    public async Task Resubscribe_with_last_seq_replays_missed_events_in_order_then_continues_live()
    {
        using var engine = Engine();
        var pub = await Connected(engine, "writer");
        var first = await Connected(engine);
        var subscribed = await first.SubscribeAsync("doc.1");
        for (int i = 1; i <= 10; i++)
        {
            await pub.PublishAsync("doc.1", [(byte)i]);
        }

        first.Session.OnTransportClosed(); // gone after seeing seq 0; events 1..10 were missed

        var again = await Connected(engine);
        again.Send(Resume(9, "doc.1", subscribed.Epoch, subscribed.Seq));
        var recovered = await again.ReceiveAsync();
        Assert.Equal(FrameType.Recovered, recovered.Type);
        Assert.Equal(9UL, recovered.RequestId);
        Assert.Equal(subscribed.Epoch, recovered.Epoch);
        Assert.Equal(10UL, recovered.Seq);
        for (int i = 1; i <= 10; i++)
        {
            var e = await again.ReceiveAsync();
            Assert.Equal(FrameType.Event, e.Type);
            Assert.Equal((ulong)i, e.Seq);
            Assert.Equal("writer", e.ClientId); // causal metadata survives replay
            Assert.Equal(new[] { (byte)i }, e.Payload);
        }

        await pub.PublishAsync("doc.1", [11]);
        var live = await again.ReceiveAsync();
        Assert.Equal(11UL, live.Seq);
    }

    [Fact]
    public async Task Replayed_events_are_the_bytes_and_metadata_live_subscribers_got()
    {
        using var engine = Engine();
        var pub = await Connected(engine, "writer");
        var live = await Connected(engine);
        var subscribed = await live.SubscribeAsync("doc.2");
        for (int i = 1; i <= 40; i++)
        {
            var e = new Envelope(FrameType.Pub).WithRequestId(pub.NextRequestId()).WithTopic("doc.2")
                .WithMessageId($"m-{i}").WithPayload(Enumerable.Range(0, i * 7).Select(b => (byte)(b + i)).ToArray());
            e = i % 3 == 0 ? e.WithKey($"key-{i % 5}") : e;
            e = i % 4 == 0 ? e.WithFlags(EventFlags.Partial) : i % 5 == 0 ? e.WithFlags(EventFlags.Droppable) : e;
            pub.Send(e);
            Assert.Equal(FrameType.Ack, (await pub.ReceiveAsync()).Type);
        }

        var seen = new List<RawEvent>();
        for (int i = 0; i < 40; i++)
        {
            seen.Add(await RawEvent.ReceiveAsync(live));
        }

        var again = await Connected(engine);
        again.Send(Resume(1, "doc.2", subscribed.Epoch, 0));
        Assert.Equal(FrameType.Recovered, (await again.ReceiveAsync()).Type);
        for (int i = 0; i < 40; i++)
        {
            var replayed = await RawEvent.ReceiveAsync(again);
            Assert.Equal(seen[i].Seq, replayed.Seq);
            Assert.Equal(seen[i].Bytes, replayed.Bytes);
            Assert.Equal(seen[i], replayed with { Bytes = seen[i].Bytes });
        }
    }

    /// <summary>An event frame as an outbox reader sees it: its bytes and what the outbox reads without decoding.</summary>
    private sealed record RawEvent(byte[] Bytes, ulong Seq, EventFlags Flags, bool IsEvent, string Topic, bool HasKey, string Key)
    {
        public static async Task<RawEvent> ReceiveAsync(InProcessClient client)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            Frame? frame;
            while (!client.Session.Outbox.TryDequeue(out frame))
            {
                await client.Session.Outbox.WaitAsync().AsTask().WaitAsync(cts.Token);
            }

            try
            {
                return new RawEvent(frame.Span.ToArray(), frame.Seq, frame.Flags, frame.IsEvent, Encoding.UTF8.GetString(frame.Topic), frame.HasKey, Encoding.UTF8.GetString(frame.Key));
            }
            finally
            {
                frame.Release();
            }
        }
    }

    [Fact]
    public async Task Resume_across_the_replay_live_seam_under_concurrent_publishing_has_no_gap_and_no_duplicate()
    {
        using var engine = Engine(retention: 100_000);
        var pub = await Connected(engine);
        var sub = await Connected(engine);
        var first = await sub.SubscribeAsync("seam");
        var secondPhase = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = new CancellationTokenSource();
        const long phaseOne = 5_000, total = 40_000; // stays inside the retention window
        var publisher = Task.Run(async () =>
        {
            var payload = new byte[8];
            for (long n = 1; n <= total && !stop.IsCancellationRequested; n++)
            {
                if (n == phaseOne + 1)
                {
                    await secondPhase.Task; // the rest is published while the subscriber resumes
                }

                BinaryPrimitives.WriteInt64BigEndian(payload, n);
                // Every number is sequenced exactly once (a BACKOFF under the flood is retried), so seq == n.
                await pub.PublishAcceptedAsync(new Envelope(FrameType.Pub).WithTopic("seam").WithPayload(payload));
            }
        });

        // Read a little live, drop the connection, resume while the publisher keeps going.
        ulong last = 0;
        for (int i = 0; i < 500; i++)
        {
            var e = await sub.ReceiveAsync();
            Assert.Equal(++last, e.Seq);
        }

        sub.Session.OnTransportClosed();
        var resumed = await Connected(engine);
        secondPhase.SetResult();
        resumed.Send(Resume(1, "seam", first.Epoch, last));
        var reply = await resumed.ReceiveAsync();
        Assert.Equal(FrameType.Recovered, reply.Type);

        // Replayed events up to the reply's seq, then live ones, to the very last: no gap, no duplicate.
        while (last < total)
        {
            var e = await resumed.ReceiveAsync();
            Assert.Equal(FrameType.Event, e.Type);
            Assert.Equal(last + 1, e.Seq);
            Assert.Equal((long)e.Seq, BinaryPrimitives.ReadInt64BigEndian(e.Payload));
            last = e.Seq;
        }

        Assert.True(reply.Seq < total, "the resume should have landed while events were still being published");
        stop.Cancel();
        await publisher;
    }

    [Fact]
    public async Task Resume_on_a_live_subscription_replays_into_it_and_keeps_it()
    {
        using var engine = Engine();
        var pub = await Connected(engine, "writer");
        var sub = await Connected(engine);
        var subscribed = await sub.SubscribeAsync("live");
        for (int i = 1; i <= 5; i++)
        {
            await pub.PublishAsync("live", [(byte)i]);
        }

        for (ulong seq = 1; seq <= 5; seq++)
        {
            Assert.Equal(seq, (await sub.ReceiveAsync()).Seq);
        }

        // The client lost 3..5 on its side and asks again from 2, without unsubscribing.
        sub.Send(Resume(21, "live", subscribed.Epoch, 2));
        var reply = await sub.ReceiveAsync();
        Assert.Equal((FrameType.Recovered, 21UL, 5UL), (reply.Type, reply.RequestId, reply.Seq));
        for (ulong seq = 3; seq <= 5; seq++)
        {
            var replayed = await sub.ReceiveAsync();
            Assert.Equal((FrameType.Event, seq), (replayed.Type, replayed.Seq));
        }

        // Still one subscription: the next event comes once.
        await pub.PublishAsync("live", [6]);
        Assert.Equal(6UL, (await sub.ReceiveAsync()).Seq);
        sub.Send(new Envelope(FrameType.Ping).WithRequestId(22));
        Assert.Equal(FrameType.Pong, (await sub.ReceiveAsync()).Type);

        // A resume without its epoch is refused, and the subscription stays.
        sub.Send(new Envelope(FrameType.Sub).WithRequestId(23).WithTopic("live").WithSeq(1));
        var refused = await sub.ReceiveAsync();
        Assert.Equal((FrameType.Error, ErrorCode.BadFrame), (refused.Type, refused.ErrorCode));
        await pub.PublishAsync("live", [7]);
        Assert.Equal(7UL, (await sub.ReceiveAsync()).Seq);
    }

    [Fact]
    public async Task Resume_beyond_retention_is_not_recovered_with_the_current_position()
    {
        using var engine = Engine(retention: 5);
        var pub = await Connected(engine);
        var sub = await Connected(engine);
        var first = await sub.SubscribeAsync("tight");
        sub.Session.OnTransportClosed();
        for (int i = 0; i < 20; i++)
        {
            await pub.PublishAsync("tight", [1]);
        }

        var again = await Connected(engine);
        again.Send(Resume(4, "tight", first.Epoch, 3)); // events 4..15 are gone (only 16..20 retained)
        var reply = await again.ReceiveAsync();
        Assert.Equal(FrameType.NotRecovered, reply.Type);
        Assert.Equal(4UL, reply.RequestId);
        Assert.Equal(first.Epoch, reply.Epoch);
        Assert.Equal(20UL, reply.Seq);

        // The subscription is live from the current position despite the lost history.
        await pub.PublishAsync("tight", [2]);
        Assert.Equal(21UL, (await again.ReceiveAsync()).Seq);

        // Exactly at the edge of what is retained is still recoverable.
        var edge = await Connected(engine);
        edge.Send(Resume(5, "tight", first.Epoch, 16));
        Assert.Equal(FrameType.Recovered, (await edge.ReceiveAsync()).Type);
        Assert.Equal(17UL, (await edge.ReceiveAsync()).Seq);
    }

    [Fact]
    public async Task Resume_with_another_epoch_is_not_recovered()
    {
        using var engine = Engine();
        var pub = await Connected(engine);
        var sub = await Connected(engine);
        var first = await sub.SubscribeAsync("epoch.t");
        await pub.PublishAsync("epoch.t", [1]);

        var again = await Connected(engine);
        again.Send(Resume(2, "epoch.t", first.Epoch - 1, 1)); // history from another life of the topic
        var reply = await again.ReceiveAsync();
        Assert.Equal(FrameType.NotRecovered, reply.Type);
        Assert.Equal(first.Epoch, reply.Epoch);
        Assert.Equal(1UL, reply.Seq);
    }

    [Fact]
    public async Task A_topic_that_lost_its_history_comes_back_with_a_new_epoch()
    {
        using var engine = new RelayEngine(new RelayOptions { Shards = 1, Retention = new RetentionOptions { MaxEvents = 0 } });
        var c = await Connected(engine);
        var first = await c.SubscribeAsync("volatile");
        c.Send(new Envelope(FrameType.Unsub).WithRequestId(50).WithTopic("volatile"));
        await c.ReceiveAsync();

        // With no subscriber and no retained history the shard forgets the topic at its maintenance pass.
        await engine.MaintainAsync();
        Assert.Null(await engine.GetTopicPositionAsync(0, "volatile"));

        var second = await c.SubscribeAsync("volatile");
        Assert.True(second.Epoch > first.Epoch, $"epoch {second.Epoch} should follow {first.Epoch}");

        var late = await Connected(engine);
        late.Send(Resume(3, "volatile", first.Epoch, 0));
        Assert.Equal(FrameType.NotRecovered, (await late.ReceiveAsync()).Type);
    }

    [Fact]
    public async Task Duplicate_publish_within_the_window_is_delivered_once_and_acked_with_the_original_seq()
    {
        using var engine = Engine();
        var pub = await Connected(engine, "stable-client");
        var sub = await Connected(engine);
        await sub.SubscribeAsync("orders");

        Envelope Pub(ulong rid, string messageId, byte b) =>
            new Envelope(FrameType.Pub).WithRequestId(rid).WithTopic("orders").WithMessageId(messageId).WithPayload(new[] { b });

        pub.Send(Pub(1, "order-42", 1));
        var ack1 = await pub.ReceiveAsync();
        pub.Send(Pub(2, "order-43", 2));
        var ack2 = await pub.ReceiveAsync();
        pub.Send(Pub(3, "order-42", 9)); // a retry of order-42
        var ack3 = await pub.ReceiveAsync();

        Assert.Equal(1UL, ack1.Seq);
        Assert.False(ack1.Flags.HasFlag(EventFlags.Duplicate));
        Assert.Equal(2UL, ack2.Seq);
        Assert.Equal(ack1.Seq, ack3.Seq);
        Assert.Equal(ack1.Epoch, ack3.Epoch);
        Assert.True(ack3.Flags.HasFlag(EventFlags.Duplicate));

        // The same client after a reconnect is still recognised: the key is the client id, not the connection.
        var reconnected = await Connected(engine, "stable-client");
        reconnected.Send(Pub(1, "order-43", 7));
        var ack4 = await reconnected.ReceiveAsync();
        Assert.Equal(2UL, ack4.Seq);
        Assert.True(ack4.Flags.HasFlag(EventFlags.Duplicate));

        // Another client may use the same message id: it is a different message.
        var other = await Connected(engine, "other-client");
        other.Send(Pub(1, "order-42", 5));
        Assert.Equal(3UL, (await other.ReceiveAsync()).Seq);

        var seen = new List<(ulong Seq, byte Payload)>();
        for (int i = 0; i < 3; i++)
        {
            var e = await sub.ReceiveAsync();
            seen.Add((e.Seq, e.Payload[0]));
        }

        Assert.Equal(new[] { (1UL, (byte)1), (2UL, (byte)2), (3UL, (byte)5) }, seen);
    }

    [Fact]
    public async Task After_the_window_a_repeated_message_id_is_a_new_event()
    {
        using var engine = Engine(window: TimeSpan.Zero);
        var pub = await Connected(engine, "c");
        pub.Send(new Envelope(FrameType.Pub).WithRequestId(1).WithTopic("w").WithMessageId("m").WithPayload(new byte[1]));
        var first = await pub.ReceiveAsync();

        // A zero window expires the entry at the next maintenance pass; the same message id is then new.
        await engine.MaintainAsync();
        pub.Send(new Envelope(FrameType.Pub).WithRequestId(2).WithTopic("w").WithMessageId("m").WithPayload(new byte[1]));
        var second = await pub.ReceiveAsync();
        Assert.False(second.Flags.HasFlag(EventFlags.Duplicate));
        Assert.Equal(first.Seq + 1, second.Seq);
    }
}
