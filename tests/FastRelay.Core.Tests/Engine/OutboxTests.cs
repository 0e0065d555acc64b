using System.Buffers.Binary;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>The outbox's lanes: a lane's first frame waits in a one-frame slot until the lane needs a queue.</summary>
public sealed class OutboxTests
{
    private static Outbox NewOutbox() => new(new OutboxLimits(MaxFrames: 1 << 20, SoftMaxBytes: 1 << 30, HardMaxBytes: 1 << 30, GraceMs: 10_000), FramePool.Shared);

    private static Frame Control(int producer, int n)
    {
        var frame = Frame.CreateUnpooled();
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, producer);
        BinaryPrimitives.WriteInt32LittleEndian(bytes[4..], n);
        frame.CopyFrom(bytes);
        return frame;
    }

    private static (int Producer, int N) Read(Frame frame) =>
        (BinaryPrimitives.ReadInt32LittleEndian(frame.Span), BinaryPrimitives.ReadInt32LittleEndian(frame.Span[4..]));

    private static List<int> DrainNumbers(Outbox outbox)
    {
        var numbers = new List<int>();
        while (outbox.TryDequeue(out var frame))
        {
            numbers.Add(Read(frame).N);
        }

        return numbers;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void One_producer_s_frames_come_out_in_order_across_the_slot_and_the_queue(bool ordered)
    {
        var outbox = NewOutbox();
        void Put(int n) => Assert.Equal(EnqueueResult.Queued, ordered ? outbox.EnqueueOrdered(Control(0, n)) : outbox.Enqueue(Control(0, n)));

        Put(1);
        Assert.Equal([1], DrainNumbers(outbox)); // one at a time: the slot only

        Put(2);
        Put(3);
        Put(4);
        Assert.True(outbox.TryDequeue(out var first));
        Assert.Equal(2, Read(first).N);
        Put(5); // the queue exists now: behind 3 and 4, never into the emptied slot
        Assert.Equal([3, 4, 5], DrainNumbers(outbox));

        Put(6);
        Put(7);
        Assert.Equal([6, 7], DrainNumbers(outbox));
    }

    [Fact]
    public async Task Concurrent_producers_each_keep_their_order_and_nothing_is_lost_or_doubled()
    {
        const int Producers = 4;
        const int PerProducer = 20_000;
        var outbox = NewOutbox();
        var next = new int[Producers];
        int received = 0;
        using var start = new Barrier(Producers + 1);
        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < PerProducer; i++)
            {
                Assert.Equal(EnqueueResult.Queued, outbox.Enqueue(Control(p, i)));
            }
        })).ToArray();

        var consumer = Task.Run(() =>
        {
            start.SignalAndWait();
            while (received < Producers * PerProducer)
            {
                if (!outbox.TryDequeue(out var frame))
                {
                    Thread.SpinWait(10);
                    continue;
                }

                var (producer, n) = Read(frame);
                Assert.Equal(next[producer], n); // per producer: in order, none lost, none twice
                next[producer] = n + 1;
                received++;
            }
        });

        await Task.WhenAll(producers).WaitAsync(TimeSpan.FromSeconds(60));
        await consumer.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(next, n => Assert.Equal(PerProducer, n));
        Assert.False(outbox.TryDequeue(out _));
    }
}
