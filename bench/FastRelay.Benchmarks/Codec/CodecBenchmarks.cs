using System.Buffers;
using BenchmarkDotNet.Attributes;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Codec;

/// <summary>The envelope codec on the publish path: decode a PUB, encode an ACK, build and stamp an EVENT template.</summary>
[MemoryDiagnoser]
public class CodecBenchmarks
{
    private const int PayloadBytes = 256;
    private const long TimestampMicros = 1_767_225_600_000_000;

    private readonly FramePool _pool = new();
    private byte[] _pubBytes = [];
    private Envelope _pub;
    private Envelope _keyedPub;
    private Envelope _ack;
    private Frame _frame = null!;
    private ulong _seq;

    [GlobalSetup]
    public void Setup()
    {
        var pub = new Envelope(FrameType.Pub)
            .WithTopic("bench.codec")
            .WithMessageId("msg-000000000001")
            .WithPayload(Enumerable.Range(0, PayloadBytes).Select(i => (byte)i).ToArray());
        var encoded = new ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(encoded, in pub);
        _pubBytes = encoded.WrittenSpan.ToArray();

        // The template input is what Session.OnPublish hands the codec: the decoded PUB plus the session's client id.
        if (EnvelopeCodec.TryDecode(_pubBytes, out _pub, out _) != DecodeError.None)
        {
            throw new InvalidOperationException("the benchmark PUB does not decode");
        }

        _pub = _pub.WithClientId("publisher-1");
        _keyedPub = _pub.WithKey("customer-000042");

        // The ACK the owner shard sends for a publish with a request id (Session.SendAck).
        _ack = new Envelope(FrameType.Ack).WithRequestId(42).WithEpoch(1_767_225_600_000_000).WithSeq(123_456);
        _frame = _pool.Rent();
    }

    [GlobalCleanup]
    public void Cleanup() => _frame.Release();

    /// <summary>TryDecode of a PUB (topic, message_id, 256-byte payload): fields are slices, nothing is copied.</summary>
    [Benchmark]
    public int DecodePub()
    {
        var error = EnvelopeCodec.TryDecode(_pubBytes, out var envelope, out _);
        return (int)error + envelope.Payload.Length + envelope.Topic.Length;
    }

    /// <summary>Encodes an ACK (request id, epoch, seq) into a pooled frame that stays rented.</summary>
    [Benchmark]
    public int EncodeAck()
    {
        EnvelopeCodec.Encode(_frame, in _ack);
        return _frame.Length;
    }

    /// <summary>What Session.SendControl does before the enqueue: rent a pooled frame, encode the ACK, release it.</summary>
    [Benchmark]
    public int RentEncodeReleaseAck()
    {
        var frame = _pool.Rent();
        EnvelopeCodec.Encode(frame, in _ack);
        int length = frame.Length;
        frame.Release();
        return length;
    }

    /// <summary>The EVENT frame of a PUB, built once (EncodeEventTemplate), then stamped in place by the owner shard.</summary>
    [Benchmark]
    public int EncodeEventTemplateAndStamp()
    {
        EnvelopeCodec.EncodeEventTemplate(_frame, in _pub, TimestampMicros);
        _frame.StampSequence(1_767_225_600_000_000, ++_seq);
        return _frame.Length;
    }

    /// <summary>The same with an ordering key (field 21): written last, its position recorded for consumer groups.</summary>
    [Benchmark]
    public int EncodeKeyedEventTemplateAndStamp()
    {
        EnvelopeCodec.EncodeEventTemplate(_frame, in _keyedPub, TimestampMicros);
        _frame.StampSequence(1_767_225_600_000_000, ++_seq);
        return _frame.Length + _frame.Key.Length;
    }
}
