using System.Buffers;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using FastRelay.Core;
using FastRelay.Core.Engine;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// Resume throughput: a reconnecting client resubscribes with (epoch, seq = 0) to a topic whose retention holds
/// <see cref="Retained"/> events; the owner shard answers RECOVERED and copies every retained event out of the topic's
/// slabs into a pooled frame (no re-encode) queued to the new session's outbox, which the benchmark thread drains
/// (releasing the frames back to the pool). One operation = one replayed
/// event. Each invocation is one whole resume: SUB (cold path: session, topic key), replay, UNSUB.
/// </summary>
[MemoryDiagnoser]
public class ReplayBenchmarks
{
    private const string Topic = "bench.replay";
    private static readonly long TimeoutTicks = Stopwatch.Frequency * 10;

    private RelayEngine _engine = null!;
    private Session _reader = null!;
    private byte[] _resume = [];
    private byte[] _unsub = [];
    private ulong _epoch;

    [Params(128, 1024)]
    public int Retained { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _engine = new RelayEngine(new RelayOptions { Shards = 1, NodeName = "bench", Retention = new RetentionOptions { MaxEvents = Retained } });
        var publisher = new InProcessPeer(_engine, "publisher");
        publisher.Hello("publisher-1");
        var payload = new byte[256];
        for (int i = 0; i < Retained; i++)
        {
            publisher.Session.OnEnvelope(InProcessPeer.Encode(new Envelope(FrameType.Pub).WithTopic(Topic).WithPayload(payload)));
        }

        var position = _engine.GetTopicPositionAsync(0, Topic).GetAwaiter().GetResult()
            ?? throw new InvalidOperationException("topic missing after setup");
        if (position.Seq != (ulong)Retained)
        {
            throw new InvalidOperationException($"expected {Retained} events, found seq {position.Seq}");
        }

        _epoch = position.Epoch;
        var reader = new InProcessPeer(_engine, "reader");
        reader.Hello("reader-1");
        _reader = reader.Session;
        _resume = InProcessPeer.Encode(new Envelope(FrameType.Sub).WithTopic(Topic).WithEpoch(_epoch).WithSeq(0));
        _unsub = InProcessPeer.Encode(new Envelope(FrameType.Unsub).WithTopic(Topic));
    }

    [GlobalCleanup]
    public void Cleanup() => _engine.Dispose();

    [Benchmark(OperationsPerInvoke = 1024)]
    public void ResumeAndReplay()
    {
        // OperationsPerInvoke is fixed at compile time: repeat smaller windows to replay 1024 events per invocation.
        for (int replays = 1024 / Retained; replays > 0; replays--)
        {
            _reader.OnEnvelope(_resume);
            Drain(Retained + 1); // RECOVERED + the retained events
            _reader.OnEnvelope(_unsub);
            Drain(1); // UNSUB's ACK
        }
    }

    private void Drain(int frames)
    {
        long deadline = Stopwatch.GetTimestamp() + TimeoutTicks;
        var spin = new SpinWait();
        while (frames > 0)
        {
            if (_reader.Outbox.TryDequeue(out var frame))
            {
                frame.Release();
                frames--;
                continue;
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"replay stalled with {frames} frames missing");
            }

            spin.SpinOnce(sleep1Threshold: -1);
        }
    }
}
