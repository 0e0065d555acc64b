using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

/// <summary>
/// Allocation budgets of the publish path, counted on the publishing thread (no timing involved). Runs alone: the
/// frame pool is process-wide, and tests publishing in parallel would take frames the measured batch expects to find.
/// </summary>
[Collection(nameof(AllocationTests))]
public sealed class AllocationTests
{
    private const int Batch = 1000;

    /// <summary>
    /// The best of several batches is compared with the budget: the runtime occasionally grows a shared queue (the
    /// thread pool's, woken by the publish) on the publishing thread, which is not a per-publish cost of the client.
    /// </summary>
    private const int MeasuredBatches = 5;

    [Fact]
    public async Task PublishNoAck_allocates_nothing_on_the_calling_thread_in_steady_state()
    {
        await using var server = FakeRelayServer.StartTcp();
        var counter = new PubCounter(server);
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var payload = new byte[256];
        var options = new PublishOptions { MessageId = "message-0001", Flags = EventFlags.Droppable };

        PrewarmFramePool(payload);
        for (int round = 0; round < 2; round++)
        {
            await counter.WaitForAsync(PublishBatch(client, payload, options)); // warm-up: pools, queues, JIT
        }

        var allocatedPerBatch = new List<long>();
        for (int round = 0; round < MeasuredBatches; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            int published = PublishBatch(client, payload, options);
            allocatedPerBatch.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            await counter.WaitForAsync(published);
        }

        Assert.True(allocatedPerBatch.Min() <= 1024,
            $"bytes allocated per batch of {Batch} fire-and-forget publishes: {string.Join(", ", allocatedPerBatch)} (budget: 0 per publish, 1 KiB per batch)");
    }

    [Fact]
    public async Task Publish_with_ack_allocates_only_the_request_and_its_task()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var payload = new byte[256];
        var pending = new Task<PublishAck>[Batch];
        PrewarmFramePool(payload);

        var bytesPerPublish = new List<long>();
        for (int round = 0; round < 2 + MeasuredBatches; round++) // rounds 0 and 1 warm up
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Batch; i++)
            {
                pending[i] = client.PublishAsync("alloc", payload);
            }

            long perPublish = (GC.GetAllocatedBytesForCurrentThread() - before) / Batch;
            await Task.WhenAll(pending).Within();
            if (round >= 2)
            {
                bytesPerPublish.Add(perPublish);
            }
        }

        Assert.True(bytesPerPublish.Min() <= 200,
            $"bytes per acknowledged publish on the calling thread: {string.Join(", ", bytesPerPublish)} (budget 200; the request and its task are about 150)");
    }

    /// <summary>
    /// Frames come back to the pool when the writer loop has sent them; a publisher that runs ahead of the socket needs
    /// as many frames as it has queued. Fill the shared pool (buffers included) so the measured batch finds them there.
    /// </summary>
    private static void PrewarmFramePool(byte[] payload)
    {
        var pub = new Envelope(FrameType.Pub).WithTopic("alloc").WithMessageId("message-0001").WithPayload(payload);
        var frames = Enumerable.Range(0, 2 * Batch).Select(_ => EnvelopeCodec.Encode(FramePool.Shared.Rent(), in pub)).ToList();
        frames.ForEach(f => f.Release());
    }

    private static int PublishBatch(FastRelayClient client, byte[] payload, PublishOptions options)
    {
        for (int i = 0; i < Batch; i++)
        {
            var sent = client.PublishNoAckAsync("alloc", payload, options);
            Assert.True(sent.IsCompletedSuccessfully); // the batch fits the send queue: no waiting
        }

        return Batch;
    }

    /// <summary>Counts the PUBs the fake server received (and swallows them, so the server's own work stays small).</summary>
    private sealed class PubCounter
    {
        private readonly Lock _lock = new();
        private int _count;
        private int _target = int.MaxValue;
        private TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public PubCounter(FakeRelayServer server)
        {
            server.Intercept = (_, frame) =>
            {
                if (frame.Type != FrameType.Pub)
                {
                    return Task.FromResult(false);
                }

                lock (_lock)
                {
                    if (++_count >= _target)
                    {
                        _reached.TrySetResult();
                    }
                }

                return Task.FromResult(true);
            };
        }

        public Task WaitForAsync(int more)
        {
            lock (_lock)
            {
                _target = (_target == int.MaxValue ? 0 : _target) + more;
                _reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_count >= _target)
                {
                    _reached.TrySetResult();
                }

                return _reached.Task.Within();
            }
        }
    }
}

[CollectionDefinition(nameof(AllocationTests), DisableParallelization = true)]
public sealed class AllocationTestsCollection;
