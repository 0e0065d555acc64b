using System.Diagnostics;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using FastRelay.Core;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// Publish → sequence → fan-out → outbox through the real engine, in process. A publisher session feeds encoded PUBs
/// (fire-and-forget, request_id 0) to <see cref="Session.OnEnvelope"/> exactly as a transport read loop does; the owner
/// shard stamps each EVENT once and queues a reference to every subscriber's outbox; the benchmark thread plays every
/// subscriber's writer (TryDequeue + Release) until each has seen the batch. One operation = one delivered event
/// (one frame reaching one subscriber's outbox and being released by its writer).
/// </summary>
/// <remarks>
/// Every invocation delivers <see cref="DeliveriesPerInvocation"/> events: events = deliveries / subscribers, published in
/// batches of at most <see cref="MaxBatch"/> so no outbox and no shard inbox (16384) overflows. Each PUB carries a fresh
/// message_id (idempotent publish: the dedup path runs). Default engine options: the dedup table and the topic's
/// history are filled during setup so the run sees their steady state (see <see cref="EngineWarmUp"/>).
/// </remarks>
[MemoryDiagnoser]
public class FanOutBenchmarks
{
    public const int DeliveriesPerInvocation = 100_000;
    public const int MaxBatch = 1000;
    public const int PayloadBytes = 256;
    private const string Topic = "bench.fanout";
    private static readonly long TimeoutTicks = Stopwatch.Frequency * 10;

    private RelayEngine _engine = null!;
    private Session _publisher = null!;
    private Session[] _subscribers = [];
    private PubSource _pubs = null!;
    private int _batch;
    private int _batches;

    /// <summary>Shard threads. One topic lives on one shard, so 2 shards adds an idle, parked shard thread.</summary>
    [Params(1, 2)]
    public int Shards { get; set; }

    [Params(1, 100, 1000)]
    public int Subscribers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new RelayOptions { Shards = Shards, NodeName = "bench" };
        int events = DeliveriesPerInvocation / Subscribers;
        _batch = Math.Min(events, MaxBatch);
        _batches = events / _batch;
        if (_batch * _batches * Subscribers != DeliveriesPerInvocation || _batch > options.OutboxCapacity)
        {
            throw new InvalidOperationException($"{Subscribers} subscribers do not divide {DeliveriesPerInvocation} deliveries into batches that fit an outbox");
        }

        _engine = new RelayEngine(options);
        var publisher = new InProcessPeer(_engine, "publisher");
        publisher.Hello("publisher-1");
        _publisher = publisher.Session;

        _subscribers = new Session[Subscribers];
        for (int i = 0; i < Subscribers; i++)
        {
            var subscriber = new InProcessPeer(_engine, $"subscriber-{i}");
            subscriber.Hello($"subscriber-{i}");
            subscriber.Subscribe(Topic);
            _subscribers[i] = subscriber.Session;
        }

        _pubs = new PubSource(Topic, PayloadBytes);
        CheckOneDelivery();
        EngineWarmUp.FillDedupTable(_engine, _publisher, Topic);

        // Fill the topic's history and the frame pool (in flight), grow queues, JIT the path.
        for (long warm = 0; warm < 2L * (options.Retention.MaxEvents + _batch); warm += _batch)
        {
            PublishBatchAndDrain();
        }

        if (_engine.Backoffs != 0 || _engine.SlowConsumers != 0 || _engine.Errors != 0)
        {
            throw new InvalidOperationException($"warm-up was not clean: {_engine.Backoffs} backoffs, {_engine.SlowConsumers} slow consumers, {_engine.Errors} errors");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var (backoffs, slow, errors) = (_engine.Backoffs, _engine.SlowConsumers, _engine.Errors);
        _engine.Dispose();
        if (backoffs != 0 || slow != 0 || errors != 0)
        {
            throw new InvalidOperationException($"the run was not clean: {backoffs} backoffs, {slow} slow consumers, {errors} errors");
        }
    }

    /// <summary>Per delivered event: decode PUB, encode EVENT once, shard hop, dedup, stamp, retain, enqueue to N outboxes, dequeue + release.</summary>
    [Benchmark(OperationsPerInvoke = DeliveriesPerInvocation)]
    public long PublishAndDrain()
    {
        long delivered = 0;
        for (int b = 0; b < _batches; b++)
        {
            delivered += PublishBatchAndDrain();
        }

        return delivered;
    }

    private long PublishBatchAndDrain()
    {
        var pubs = _pubs;
        for (int i = 0; i < _batch; i++)
        {
            if (!_publisher.OnEnvelope(pubs.Next()))
            {
                ThrowPublisherClosed();
            }
        }

        return DrainAll(_batch);
    }

    /// <summary>Plays every subscriber's writer until each has taken <paramref name="expected"/> frames.</summary>
    private long DrainAll(int expected)
    {
        long delivered = 0;
        foreach (var subscriber in _subscribers)
        {
            var outbox = subscriber.Outbox;
            int got = 0;
            var spin = new SpinWait();
            long started = 0;
            while (got < expected)
            {
                if (outbox.TryDequeue(out var frame))
                {
                    frame.Release();
                    got++;
                    spin = default;
                    continue;
                }

                if (spin.NextSpinWillYield)
                {
                    long now = Stopwatch.GetTimestamp();
                    if (started == 0)
                    {
                        started = now;
                    }
                    else if (now - started > TimeoutTicks)
                    {
                        ThrowStalled(subscriber, got, expected);
                    }
                }

                spin.SpinOnce(sleep1Threshold: -1);
            }

            delivered += got;
        }

        return delivered;
    }

    /// <summary>One PUB, checked end to end: every subscriber gets one EVENT with the payload and a seq.</summary>
    private void CheckOneDelivery()
    {
        if (!_publisher.OnEnvelope(_pubs.Next()))
        {
            ThrowPublisherClosed();
        }

        foreach (var subscriber in _subscribers)
        {
            var peerStarted = Stopwatch.GetTimestamp();
            Frame? frame;
            while (!subscriber.Outbox.TryDequeue(out frame))
            {
                if (Stopwatch.GetTimestamp() - peerStarted > TimeoutTicks)
                {
                    ThrowStalled(subscriber, 0, 1);
                }

                Thread.Yield();
            }

            var error = EnvelopeCodec.TryDecode(frame.Memory, out var evt, out _);
            bool ok = error == DecodeError.None && evt.Type == FrameType.Event && evt.Payload.Length == PayloadBytes && evt.Seq == 1;
            frame.Release();
            if (!ok)
            {
                throw new InvalidOperationException($"{subscriber} got {evt.Type} seq {evt.Seq} ({error}) instead of EVENT seq 1");
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowPublisherClosed() => throw new InvalidOperationException($"publisher closed: {_publisher.CloseReason}");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowStalled(Session subscriber, int got, int expected) => throw new TimeoutException(
        $"{subscriber} got {got} of {expected} frames in 10 s (backoffs {_engine.Backoffs}, slow consumers {_engine.SlowConsumers}, closed: {subscriber.CloseReason})");
}
