using System.Diagnostics;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using FastRelay.Core;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// The fixed cost of one publish through the real engine, with no subscriber: decode the PUB, encode the EVENT
/// template, hash, hand to the owner shard, which sequences it and releases the frame. Together with
/// <see cref="FanOutBenchmarks"/> it splits fan-out cost into per-publish and per-delivery parts.
/// </summary>
[MemoryDiagnoser]
public class PublishBenchmarks
{
    public const int EventsPerInvocation = 10_000;
    private static readonly long TimeoutTicks = Stopwatch.Frequency * 10;

    private RelayEngine _engine = null!;
    private Session _publisher = null!;
    private ReadOnlyMemory<byte> _pub;
    private long _published;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new RelayEngine(new RelayOptions { Shards = 1, NodeName = "bench" });
        var publisher = new InProcessPeer(_engine, "publisher");
        publisher.Hello("publisher-1");
        _publisher = publisher.Session;
        _pub = InProcessPeer.Encode(new Envelope(FrameType.Pub)
            .WithTopic("bench.publish")
            .WithMessageId("msg-000000000001")
            .WithPayload(Enumerable.Range(0, FanOutBenchmarks.PayloadBytes).Select(i => (byte)i).ToArray()));
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
        for (int i = 0; i < EventsPerInvocation; i++)
        {
            if (!_publisher.OnEnvelope(_pub))
            {
                ThrowPublisherClosed();
            }
        }

        _published += EventsPerInvocation;
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
