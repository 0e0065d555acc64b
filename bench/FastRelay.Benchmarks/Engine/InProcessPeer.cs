using System.Buffers;
using System.Diagnostics;
using FastRelay.Core;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// A session driven the way a transport drives it, without a socket: encoded envelopes go in through
/// <see cref="Session.OnEnvelope"/>, frames come out of its outbox. Setup-time helpers only; nothing here is measured.
/// </summary>
internal sealed class InProcessPeer
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly ArrayBufferWriter<byte> _encode = new(512);

    public InProcessPeer(RelayEngine engine, string name) => Session = engine.CreateSession(name, "bench");

    public Session Session { get; }

    public static byte[] Encode(in Envelope envelope)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        EnvelopeCodec.Encode(buffer, in envelope);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>HELLO, then waits for the WELCOME.</summary>
    public void Hello(string clientId)
    {
        Send(new Envelope(FrameType.Hello).WithRequestId(1).WithVersion(ProtocolLimits.Version).WithClientId(clientId));
        Expect(FrameType.Welcome);
    }

    /// <summary>SUB, then waits for the shard's ACK.</summary>
    public void Subscribe(string topic)
    {
        Send(new Envelope(FrameType.Sub).WithRequestId(2).WithTopic(topic));
        Expect(FrameType.Ack);
    }

    private void Send(in Envelope envelope)
    {
        _encode.ResetWrittenCount();
        EnvelopeCodec.Encode(_encode, in envelope);
        if (!Session.OnEnvelope(_encode.WrittenMemory))
        {
            throw new InvalidOperationException($"{Session} closed: {Session.CloseReason}");
        }
    }

    /// <summary>Takes the next frame from the outbox and checks its type (ERROR frames name their reason).</summary>
    public void Expect(FrameType type)
    {
        var started = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        Frame frame;
        while (!Session.Outbox.TryDequeue(out frame))
        {
            if (Stopwatch.GetElapsedTime(started) > Timeout)
            {
                throw new TimeoutException($"{Session}: no {type} within {Timeout.TotalSeconds} s");
            }

            spin.SpinOnce(sleep1Threshold: -1);
        }

        try
        {
            var frameBytes = frame.Memory;
            var error = EnvelopeCodec.TryDecode(frameBytes, out var received, out _);
            if (error != DecodeError.None || received.Type != type)
            {
                string reason = received.Type == FrameType.Error ? received.ReasonString : error.ToString();
                throw new InvalidOperationException($"{Session}: expected {type}, got {received.Type} ({reason})");
            }
        }
        finally
        {
            frame.Release();
        }
    }
}
