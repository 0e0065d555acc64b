using System.Buffers;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>A GROUP_ACK is one per event a group member handles: the connection thread allocates nothing for it.</summary>
public sealed class GroupAckAllocationTests
{
    [Theory]
    [InlineData("jobs", "jobs")]    // a topic group: matched on the frame's bytes
    [InlineData("jobs.*", "jobs.a")] // a pattern group: the concrete topic's key comes from the session's cache
    public async Task Acknowledging_group_events_allocates_nothing_on_the_connection_thread(string joined, string topic)
    {
        const int batch = 200;
        using var engine = new RelayEngine(new RelayOptions { Shards = 2, Dedup = new() { MaxEntriesPerShard = 4096 } });
        var publisher = new InProcessClient(engine, "publisher");
        await publisher.HelloAsync();
        var worker = new InProcessClient(engine, "worker");
        await worker.HelloAsync();
        // Two memberships, so the match has something to skip: a topic group elsewhere and the one under test.
        worker.Send(new Envelope(FrameType.Sub).WithRequestId(1).WithTopic("other").WithGroup("w").WithCredits(8));
        Assert.Equal(FrameType.Ack, (await worker.ReceiveAsync()).Type);
        worker.Send(new Envelope(FrameType.Sub).WithRequestId(2).WithTopic(joined).WithGroup("w").WithCredits(16));
        Assert.Equal(FrameType.Ack, (await worker.ReceiveAsync()).Type);

        var encoded = new ArrayBufferWriter<byte>();
        var ackEncoded = new ArrayBufferWriter<byte>();
        var payload = new byte[32];
        var topicBytes = System.Text.Encoding.UTF8.GetBytes(topic);
        var group = "w"u8.ToArray();

        // 16 credits: every event after the first 16 is released by an ACK, so the acks really flow.
        async Task<long> RunBatches(int batches)
        {
            long ackAllocated = 0;
            for (int b = 0; b < batches; b++)
            {
                int published = 0, got = 0;
                while (got < batch)
                {
                    while (published < batch && published - got < 16)
                    {
                        encoded.ResetWrittenCount();
                        var pub = new Envelope(FrameType.Pub).WithTopic(topicBytes).WithPayload(payload);
                        EnvelopeCodec.Encode(encoded, in pub);
                        Assert.True(publisher.Session.OnEnvelope(encoded.WrittenMemory));
                        published++;
                    }

                    var frame = await NextEventAsync(worker);
                    ulong seq = frame.Seq;
                    frame.Release();
                    got++;
                    ackEncoded.ResetWrittenCount();
                    var ack = new Envelope(FrameType.GroupAck).WithTopic(topicBytes).WithGroup(group).WithSeq(seq);
                    EnvelopeCodec.Encode(ackEncoded, in ack);
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    Assert.True(worker.Session.OnEnvelope(ackEncoded.WrittenMemory));
                    ackAllocated += GC.GetAllocatedBytesForCurrentThread() - before;
                }
            }

            return ackAllocated;
        }

        await RunBatches(20); // warm-up: the tiered JIT may allocate on this thread while it promotes a method
        long allocated = await RunBatches(50);

        // 10,000 acks: a string per ack (topic or group name) would be >= 240,000 B.
        Assert.True(allocated < 1024, $"GROUP_ACK allocated {allocated} B on the connection thread for {50 * batch} acks");
        var state = await engine.GetGroupStateAsync(0, joined, "w");
        Assert.Equal(0, state!.Value.Pending);
    }

    private static async Task<Frame> NextEventAsync(InProcessClient client)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            if (client.Session.Outbox.TryDequeue(out var frame))
            {
                return frame;
            }

            await client.Session.Outbox.WaitAsync().AsTask().WaitAsync(timeout.Token);
        }
    }
}
