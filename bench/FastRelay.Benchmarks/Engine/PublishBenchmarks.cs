using System.Diagnostics;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using FastRelay.Core;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// The fixed cost of one publish through the real engine, with no subscriber: decode the PUB, encode the EVENT
/// template, hash topic and dedup key, hand to the owner shard, which checks the dedup table, sequences the event,
/// copies it into the topic's history (dropping the oldest) and releases the frame. Fresh message_id per PUB;
/// the dedup table and the history are filled in setup (steady state, see <see cref="EngineWarmUp"/>). Together with
/// <see cref="FanOutBenchmarks"/> it splits fan-out cost into per-publish and per-delivery parts.
/// </summary>
[MemoryDiagnoser]
public class PublishBenchmarks
{
    public const int EventsPerInvocation = 10_000;
    private const string Topic = "bench.publish";
    private static readonly long TimeoutTicks = Stopwatch.Frequency * 10;

    private RelayEngine _engine = null!;
    private Session _publisher = null!;
    private PubSource _pubs = null!;
    private long _published;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new RelayEngine(new RelayOptions { Shards = 1, NodeName = "bench" });
        var publisher = new InProcessPeer(_engine, "publisher");
        publisher.Hello("publisher-1");
        _publisher = publisher.Session;
        _pubs = new PubSource(Topic, FanOutBenchmarks.PayloadBytes);
        EngineWarmUp.FillDedupTable(_engine, _publisher, Topic);
        for (int i = 0; i < 3; i++)
        {
            PublishToTopicWithoutSubscribers();
        }

        if (_engine.Backoffs != 0 || _engine.Errors != 0)
        {
            throw new InvalidOperationException($"warm-up was not clean: {_engine.Backoffs} backoffs, {_engine.Errors} errors");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _engine.Dispose();

    /// <summary>One op = one PUB accepted by the session and sequenced by its shard (waits until the shard has them all).</summary>
    [Benchmark(OperationsPerInvoke = EventsPerInvocation)]
    public long PublishToTopicWithoutSubscribers()
    {
        // The previous invocation waited for all of its publishes, so the count is stable here.
        _published = _engine.Published + EventsPerInvocation;
        var pubs = _pubs;
        for (int i = 0; i < EventsPerInvocation; i++)
        {
            if (!_publisher.OnEnvelope(pubs.Next()))
            {
                ThrowPublisherClosed();
            }
        }

        long started = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        while (_engine.Published < _published)
        {
            if (Stopwatch.GetTimestamp() - started > TimeoutTicks)
            {
                ThrowStalled();
            }

            spin.SpinOnce(sleep1Threshold: -1);
        }

        return _published;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowPublisherClosed() => throw new InvalidOperationException($"publisher closed: {_publisher.CloseReason}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowStalled() => throw new TimeoutException($"shard sequenced {_engine.Published} of {_published} publishes in 10 s (backoffs {_engine.Backoffs})");
}
