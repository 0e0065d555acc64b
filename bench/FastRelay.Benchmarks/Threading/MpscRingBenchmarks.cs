using BenchmarkDotNet.Attributes;
using FastRelay.Core.Engine;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Threading;

/// <summary>
/// MpscRing on one thread: the uncontended cost of one TryEnqueue + one TryDequeue, for the two shapes the engine
/// uses (a reference item as in an outbox, the ShardCommand struct as in a shard inbox).
/// </summary>
[MemoryDiagnoser]
public class MpscRingBenchmarks
{
    private const int Ops = 1024;

    private readonly MpscRing<Frame> _outboxShaped = new(1024);
    private readonly MpscRing<ShardCommand> _inboxShaped = new(16384);
    private readonly Frame _frame = Frame.CreateUnpooled();
    private ShardCommand _command;

    [GlobalSetup]
    public void Setup() => _command = new ShardCommand { Kind = ShardCommandKind.Publish, Frame = _frame, Hash = 42, RequestId = 7 };

    /// <summary>One op = enqueue + dequeue of a frame reference (outbox ring, capacity 1024).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int EnqueueDequeueFrame()
    {
        var ring = _outboxShaped;
        int seen = 0;
        for (int i = 0; i < Ops; i++)
        {
            ring.TryEnqueue(_frame);
            if (ring.TryDequeue(out var item) && ReferenceEquals(item, _frame))
            {
                seen++;
            }
        }

        return seen;
    }

    /// <summary>One op = enqueue + dequeue of a ShardCommand by value (shard inbox ring, capacity 16384).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong EnqueueDequeueShardCommand()
    {
        var ring = _inboxShaped;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ring.TryEnqueue(_command);
            if (ring.TryDequeue(out var item))
            {
                sum += item.RequestId;
            }
        }

        return sum;
    }
}
