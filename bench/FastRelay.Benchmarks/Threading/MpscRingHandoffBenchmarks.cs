using BenchmarkDotNet.Attributes;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Threading;

/// <summary>
/// MpscRing across two threads: a producer thread enqueues <see cref="Items"/> frame references into an
/// outbox-sized ring (1024) while the benchmark thread dequeues them. Both sides spin when full or empty,
/// so this is the hand-off cost with both threads running (cache-line transfers included), per item.
/// </summary>
[MemoryDiagnoser]
public class MpscRingHandoffBenchmarks
{
    private const int Items = 1 << 16;

    private readonly MpscRing<Frame> _ring = new(1024);
    private readonly Frame _frame = Frame.CreateUnpooled();
    private readonly SemaphoreSlim _go = new(0);
    private Thread? _producer;
    private volatile bool _stopping;

    [GlobalSetup]
    public void Setup()
    {
        _producer = new Thread(Produce) { IsBackground = true, Name = "bench-producer" };
        _producer.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stopping = true;
        _go.Release();
        _producer?.Join();
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public int ProducerToConsumer()
    {
        _go.Release();
        var ring = _ring;
        int received = 0;
        var spin = new SpinWait();
        while (received < Items)
        {
            if (ring.TryDequeue(out _))
            {
                received++;
                spin = default;
            }
            else
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        return received;
    }

    private void Produce()
    {
        while (true)
        {
            _go.Wait();
            if (_stopping)
            {
                return;
            }

            var spin = new SpinWait();
            for (int i = 0; i < Items; i++)
            {
                while (!_ring.TryEnqueue(_frame))
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }

                spin = default;
            }
        }
    }
}
