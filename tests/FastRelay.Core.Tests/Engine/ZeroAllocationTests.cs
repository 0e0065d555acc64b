using System.Buffers;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>The publish → deliver path allocates nothing per event once pools are warm.</summary>
public sealed class ZeroAllocationTests
{
    private static readonly byte[] s_topic = "bench.topic"u8.ToArray();

    [Fact]
    public async Task Publish_and_fan_out_allocate_no_managed_memory_per_delivered_event_after_warm_up()
    {
        const int subscribers = 50;
        const int batch = 200;
        // Retention (replay) and dedup (idempotent publish) are on, as in production; the dedup table is kept small
        // so the run reaches its steady-state size (oldest entries leave early) during the warm-up.
        using var engine = new RelayEngine(new RelayOptions { Shards = 2, Dedup = new() { MaxEntriesPerShard = 4096 } });
        var publisher = new InProcessClient(engine, "publisher");
        await publisher.HelloAsync();
        var subs = new Session[subscribers];
        for (int i = 0; i < subscribers; i++)
        {
            var client = new InProcessClient(engine, $"sub{i}");
            await client.HelloAsync();
            await client.SubscribeAsync("bench.topic");
            subs[i] = client.Session;
        }

        // Each PUB carries a new message id (so dedup records it) and is encoded into a reused buffer.
        var encoded = new ArrayBufferWriter<byte>();
        var messageId = new byte[16];
        var payload = new byte[256];
        long counter = 0;
        ReadOnlyMemory<byte> NextPub()
        {
            System.Buffers.Text.Utf8Formatter.TryFormat(++counter, messageId, out int idLength, new System.Buffers.StandardFormat('D', 16));
            encoded.ResetWrittenCount();
            var pub = new Envelope(FrameType.Pub).WithTopic(s_topic).WithMessageId(messageId.AsMemory(0, idLength)).WithPayload(payload);
            EnvelopeCodec.Encode(encoded, in pub);
            return encoded.WrittenMemory;
        }

        long RunBatches(int batches)
        {
            long delivered = 0;
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch; i++)
                {
                    Assert.True(publisher.Session.OnEnvelope(NextPub()));
                }

                foreach (var s in subs)
                {
                    int got = DrainFrames(s, batch);

                    delivered += got;
                }
            }

            return delivered;
        }

        // Warm-up until steady state: pools filled, retention (1,024) and dedup (4,096) at size, and the JIT's tiering
        // settled (promoting a method to tier 1 mid-run allocates on the calling thread). Steady state = a round of
        // ten batches that allocates nothing anywhere; bounded, and the measurement below must hold regardless.
        RunBatches(40);
        for (int round = 0; round < 50; round++)
        {
            long roundShard = await engine.GetShardAllocatedBytesAsync();
            long roundThread = GC.GetAllocatedBytesForCurrentThread();
            RunBatches(10);
            if (GC.GetAllocatedBytesForCurrentThread() == roundThread && await engine.GetShardAllocatedBytesAsync() - roundShard < 512)
            {
                break;
            }
        }

        long shardBefore = await engine.GetShardAllocatedBytesAsync();
        long threadBefore = GC.GetAllocatedBytesForCurrentThread();
        long delivered = RunBatches(100);
        long threadAllocated = GC.GetAllocatedBytesForCurrentThread() - threadBefore;
        long shardAllocated = await engine.GetShardAllocatedBytesAsync() - shardBefore;

        Assert.Equal(100L * batch * subscribers, delivered);
        double perEvent = (double)(threadAllocated + shardAllocated) / delivered;
        // 1,000,000 deliveries from 20,000 publishes: one allocation per publish (24 B at least) would total
        // ≥ 480,000 B, one per delivery ≥ 24,000,000 B. The bound leaves room only for one-off runtime work that
        // lands on these threads (tiered JIT promoting a method mid-run while the rest of the suite runs).
        Assert.True(
            threadAllocated + shardAllocated < 65_536,
            $"allocated {threadAllocated} B on the connection thread and {shardAllocated} B on shard threads for {delivered} deliveries ({perEvent:F4} B/event)");
    }

    [Fact]
    public async Task Publish_with_retention_allocates_nothing_per_event_while_the_history_of_many_topics_is_still_filling()
    {
        // Many topics at a few events each, history far from its bounds (the rooms case): every event is retained
        // and none leaves, so nothing can be recycled from the history itself while it grows.
        const int topics = 200;
        using var engine = new RelayEngine(new RelayOptions { Shards = 2, Retention = new() { MaxEvents = 100_000 } });
        var publisher = new InProcessClient(engine, "publisher");
        await publisher.HelloAsync();
        var subscriber = new InProcessClient(engine, "subscriber");
        await subscriber.HelloAsync();
        var topicBytes = new byte[topics][];
        for (int t = 0; t < topics; t++)
        {
            topicBytes[t] = System.Text.Encoding.UTF8.GetBytes($"rooms.{t}");
            await subscriber.SubscribeAsync($"rooms.{t}");
        }

        var encoded = new ArrayBufferWriter<byte>();
        var payload = new byte[128];

        // One batch = one event to every topic, then the subscriber drains its outbox.
        long RunBatches(int batches)
        {
            long delivered = 0;
            for (int b = 0; b < batches; b++)
            {
                for (int t = 0; t < topics; t++)
                {
                    encoded.ResetWrittenCount();
                    var pub = new Envelope(FrameType.Pub).WithTopic(topicBytes[t]).WithPayload(payload);
                    EnvelopeCodec.Encode(encoded, in pub);
                    Assert.True(publisher.Session.OnEnvelope(encoded.WrittenMemory));
                }

                int got = DrainFrames(subscriber.Session, topics);

                delivered += got;
            }

            return delivered;
        }

        // Warm-up: frame pool, outbox queues, topics and the JIT's tiering settle (bounded, as above).
        RunBatches(20);
        for (int round = 0; round < 50; round++)
        {
            long roundShard = await engine.GetShardAllocatedBytesAsync();
            long roundThread = GC.GetAllocatedBytesForCurrentThread();
            RunBatches(5);
            if (GC.GetAllocatedBytesForCurrentThread() == roundThread && await engine.GetShardAllocatedBytesAsync() - roundShard < 512)
            {
                break;
            }
        }

        long retainedBefore = engine.RetainedBytes;
        long shardBefore = await engine.GetShardAllocatedBytesAsync();
        long threadBefore = GC.GetAllocatedBytesForCurrentThread();
        long delivered = RunBatches(100);
        long threadAllocated = GC.GetAllocatedBytesForCurrentThread() - threadBefore;
        long shardAllocated = await engine.GetShardAllocatedBytesAsync() - shardBefore;

        Assert.Equal(100L * topics, delivered);
        Assert.Equal(0, engine.RetentionEvicted);
        Assert.True(engine.RetainedBytes > retainedBefore + (100L * topics * 128), "history kept growing while measured");

        // 20,000 publishes, each retained: a frame kept per event (a new pooled frame and buffer every publish, the
        // old layout) would be ≥ 20,000 × 24 B = 480,000 B; slabs are native memory and take no managed allocation.
        Assert.True(
            threadAllocated + shardAllocated < 65_536,
            $"allocated {threadAllocated} B on the connection thread and {shardAllocated} B on shard threads for {delivered} retained events ({(double)(threadAllocated + shardAllocated) / delivered:F4} B/event)");
    }

    [Fact]
    public async Task Forwarding_to_a_pattern_group_allocates_nothing_on_the_shards_after_warm_up()
    {
        const int batch = 200;
        string[] topics = ["jobs.a", "jobs.b", "jobs.c", "jobs.d"];
        using var engine = new RelayEngine(new RelayOptions { Shards = 2, Dedup = new() { MaxEntriesPerShard = 4096 }, Groups = new() { MaxCredits = 1_000_000 } });
        var publisher = new InProcessClient(engine, "publisher");
        await publisher.HelloAsync();
        var worker = new InProcessClient(engine, "worker");
        await worker.HelloAsync();
        worker.Send(new Envelope(FrameType.Sub).WithRequestId(1).WithTopic("jobs.*").WithGroup("w").WithCredits(1_000_000));
        Assert.Equal(FrameType.Ack, (await worker.ReceiveAsync()).Type);

        var encoded = new ArrayBufferWriter<byte>();
        var payload = new byte[64];
        var topicBytes = topics.Select(t => System.Text.Encoding.UTF8.GetBytes(t)).ToArray();

        // Forwarding and dispatch only: the member holds everything (credits are large), so no GROUP_ACK is involved.
        async Task RunBatches(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch; i++)
                {
                    encoded.ResetWrittenCount();
                    var pub = new Envelope(FrameType.Pub).WithTopic(topicBytes[i % topics.Length]).WithPayload(payload);
                    EnvelopeCodec.Encode(encoded, in pub);
                    Assert.True(publisher.Session.OnEnvelope(encoded.WrittenMemory));
                }

                int got = DrainFrames(worker.Session, batch);

                await engine.QuiesceAsync();
            }
        }

        long allocated = await SteadyStateShardAllocationAsync(engine, RunBatches);

        // 10,000 events forwarded across shards and dispatched: one allocation per event would be ≥ 240,000 B.
        Assert.True(allocated < 65_536, $"shard threads allocated {allocated} B for {50 * batch} pattern group events");
        var state = await engine.GetGroupStateAsync(0, "jobs.*", "w");
        Assert.Equal((1, 0), (state!.Value.Members, state.Value.Pending));
        Assert.True(state.Value.InFlight >= 50 * batch);
    }

    [Fact]
    public async Task Keyed_group_dispatch_and_ack_allocate_nothing_on_the_shards_after_warm_up()
    {
        const int batch = 200;
        const int keys = 16;
        using var engine = new RelayEngine(new RelayOptions { Shards = 2, Dedup = new() { MaxEntriesPerShard = 4096 } });
        var publisher = new InProcessClient(engine, "publisher");
        await publisher.HelloAsync();
        var worker = new InProcessClient(engine, "worker");
        await worker.HelloAsync();
        worker.Send(new Envelope(FrameType.Sub).WithRequestId(1).WithTopic("jobs").WithGroup("w").WithCredits(64));
        Assert.Equal(FrameType.Ack, (await worker.ReceiveAsync()).Type);

        var encoded = new ArrayBufferWriter<byte>();
        var ackEncoded = new ArrayBufferWriter<byte>();
        var payload = new byte[64];
        var topic = "jobs"u8.ToArray();
        var group = "w"u8.ToArray();
        var keyBytes = Enumerable.Range(0, keys).Select(k => System.Text.Encoding.UTF8.GetBytes($"customer-{k}")).ToArray();

        // Per key one event at a time: only 16 of each batch are out at once, so every delivery after the first 16 is
        // released by the GROUP_ACK of the previous event of its key (the keyed dispatch path, pooled per-key state).
        async Task RunBatches(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch; i++)
                {
                    encoded.ResetWrittenCount();
                    var pub = new Envelope(FrameType.Pub).WithTopic(topic).WithKey(keyBytes[i % keys]).WithPayload(payload);
                    EnvelopeCodec.Encode(encoded, in pub);
                    Assert.True(publisher.Session.OnEnvelope(encoded.WrittenMemory));
                }

                int got = 0;
                var spin = new SpinWait();
                while (got < batch)
                {
                    if (worker.Session.Outbox.TryDequeue(out var frame))
                    {
                        ulong seq = frame.Seq;
                        frame.Release();
                        got++;
                        spin = default;
                        ackEncoded.ResetWrittenCount();
                        var ack = new Envelope(FrameType.GroupAck).WithTopic(topic).WithGroup(group).WithSeq(seq);
                        EnvelopeCodec.Encode(ackEncoded, in ack);
                        Assert.True(worker.Session.OnEnvelope(ackEncoded.WrittenMemory));
                    }
                    else
                    {
                        spin.SpinOnce(sleep1Threshold: -1);
                    }
                }

                await engine.QuiesceAsync();
            }
        }

        long allocated = await SteadyStateShardAllocationAsync(engine, RunBatches);

        // 10,000 keyed events dispatched and acknowledged: one allocation per event would be >= 240,000 B.
        Assert.True(allocated < 65_536, $"shard threads allocated {allocated} B for {50 * batch} keyed group events");
        var state = await engine.GetGroupStateAsync(0, "jobs", "w");
        Assert.Equal((1, 0, 0), state);
    }

    /// <summary>
    /// Warms <paramref name="runBatches"/> up until a round of ten batches allocates (almost) nothing on the shard
    /// threads (bounded: the measurement must hold regardless), then returns what 50 more batches allocate there.
    /// </summary>
    private static async Task<long> SteadyStateShardAllocationAsync(RelayEngine engine, Func<int, Task> runBatches)
    {
        await runBatches(40);
        for (int round = 0; round < 50; round++)
        {
            long roundShard = await engine.GetShardAllocatedBytesAsync();
            await runBatches(10);
            if (await engine.GetShardAllocatedBytesAsync() - roundShard < 512)
            {
                break;
            }
        }

        long before = await engine.GetShardAllocatedBytesAsync();
        await runBatches(50);
        return await engine.GetShardAllocatedBytesAsync() - before;
    }

    /// <summary>Takes exactly <paramref name="count"/> frames from the session's outbox (spinning while they are on the way).</summary>
    private static int DrainFrames(Session session, int count)
    {
        int got = 0;
        var spin = new SpinWait();
        while (got < count)
        {
            if (session.Outbox.TryDequeue(out var frame))
            {
                frame.Release();
                got++;
                spin = default;
            }
            else
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        return got;
    }
}
