using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using FastRelay.LoadGen.Clients;
using FastRelay.Protocol;

namespace FastRelay.LoadGen.Wire;

/// <summary>
/// FastRelay envelopes (src/FastRelay.Protocol's EnvelopeCodec) inside a transport framing supplied by the
/// subclass: 4-byte length prefix (raw TCP) or masked RFC 6455 frames (WebSocket).
/// </summary>
internal abstract class FastRelayWire : WireProtocol
{
    // Envelopes are encoded into a per-thread scratch buffer, then framed into the destination.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_scratch;

    private const int EnvelopeOverhead = 64; // map header, keys, type, request id, bin/str headers

    public override bool PublishReplyCountsReceivers => false;

    /// <summary>
    /// When set (tenants configured), HELLO carries this token for client index i; its subject must be
    /// <c>loadgen-{i}</c>, the client id HELLO asks for.
    /// </summary>
    public Func<int, string>? TokenFor { get; set; }

    /// <summary>Most bytes the framing adds around one envelope.</summary>
    protected abstract int MaxFrameOverhead { get; }

    public override int MaxPublishBytes(int topicBytes, int payloadBytes) => MaxFrameOverhead + EnvelopeOverhead + topicBytes + payloadBytes;

    /// <summary>Writes <paramref name="body"/> with the transport framing; returns the bytes written.</summary>
    protected abstract int WriteFrame(Span<byte> destination, ReadOnlySpan<byte> body);

    /// <summary>
    /// Finds the next frame: false when incomplete. <paramref name="control"/> is <see cref="InboundKind.Event"/>
    /// for a frame carrying an envelope, else the transport control frame it is (WebSocket close, ping).
    /// </summary>
    protected abstract bool TryReadFrame(byte[] buffer, int offset, int count, out int consumed, out int bodyOffset, out int bodyLength, out InboundKind control);

    public override async Task OpenAsync(ClientConnection connection, int clientIndex, CancellationToken cancellationToken)
    {
        await UpgradeAsync(connection, cancellationToken).ConfigureAwait(false);
        var hello = new Envelope(FrameType.Hello)
            .WithRequestId(1)
            .WithVersion(ProtocolLimits.Version)
            .WithClientId($"loadgen-{clientIndex}");
        if (TokenFor is { } tokenFor)
        {
            hello = hello.WithToken(tokenFor(clientIndex));
        }

        byte[] frame = EncodeFrame(in hello);
        await connection.SendAsync(frame, cancellationToken).ConfigureAwait(false);
        var reply = await connection.ReadInboundAsync(cancellationToken).ConfigureAwait(false);
        if (reply.Kind != InboundKind.Welcome)
        {
            throw new WireException($"expected WELCOME after HELLO, got {reply.Kind} {reply.ErrorCode} {reply.Text}");
        }
    }

    /// <summary>Transport handshake before HELLO (the WebSocket upgrade); nothing for raw TCP.</summary>
    protected virtual Task UpgradeAsync(ClientConnection connection, CancellationToken cancellationToken) => Task.CompletedTask;

    public override int WriteSubscribe(Span<byte> destination, ReadOnlyMemory<byte> topic, ulong requestId)
    {
        var sub = new Envelope(FrameType.Sub).WithRequestId(requestId).WithTopic(topic);
        return WriteEnvelope(destination, in sub);
    }

    public override int WritePublish(Span<byte> destination, ReadOnlyMemory<byte> topic, ReadOnlyMemory<byte> payload, ulong requestId, EventFlags flags = 0)
    {
        var pub = new Envelope(FrameType.Pub) { Topic = topic, Payload = payload, RequestId = requestId, Flags = flags };
        pub.Present |= FieldMask.Topic | FieldMask.Payload | (requestId != 0 ? FieldMask.RequestId : 0) | (flags != 0 ? FieldMask.Flags : 0);
        return WriteEnvelope(destination, in pub);
    }

    public override bool IsSubscribed(in Inbound message, ulong requestId) =>
        message.Kind == InboundKind.Ack && message.RequestId == requestId;

    private int WriteEnvelope(Span<byte> destination, in Envelope envelope)
    {
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(4096);
        scratch.ResetWrittenCount();
        EnvelopeCodec.Encode(scratch, in envelope);
        return WriteFrame(destination, scratch.WrittenSpan);
    }

    private byte[] EncodeFrame(in Envelope envelope)
    {
        byte[] buffer = new byte[4096];
        int n = WriteEnvelope(buffer, in envelope);
        return buffer.AsSpan(0, n).ToArray();
    }

    public override bool TryRead(byte[] buffer, int offset, int count, out int consumed, out Inbound message)
    {
        message = default;
        if (!TryReadFrame(buffer, offset, count, out consumed, out int bodyOffset, out int bodyLength, out var control))
        {
            return false;
        }

        if (control != InboundKind.Event)
        {
            message.Kind = control; // a transport control frame, no envelope
            return true;
        }

        // Hot path: an EVENT, skimmed in place. Everything else (and anything unusual) goes through EnvelopeCodec.
        if (EventSkimmer.TryReadEvent(new ReadOnlySpan<byte>(buffer, bodyOffset, bodyLength), out long seq, out int payloadOffset, out int payloadLength))
        {
            message.Kind = InboundKind.Event;
            message.Value = seq;
            message.SentTimestamp = payloadLength >= sizeof(long) ? BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(bodyOffset + payloadOffset)) : 0;
            return true;
        }

        var error = EnvelopeCodec.TryDecode(new ReadOnlyMemory<byte>(buffer, bodyOffset, bodyLength), out var envelope, out var field);
        if (error != DecodeError.None)
        {
            throw new WireException($"undecodable envelope from the server: {error} at field {field}");
        }

        switch (envelope.Type)
        {
            case FrameType.Event:
                message.Kind = InboundKind.Event;
                message.Value = (long)envelope.Seq;
                var payload = envelope.Payload.Span;
                message.SentTimestamp = payload.Length >= sizeof(long) ? BinaryPrimitives.ReadInt64LittleEndian(payload) : 0;
                break;
            case FrameType.Ack:
                message.Kind = InboundKind.Ack;
                message.RequestId = envelope.RequestId;
                message.Value = (long)envelope.Seq;
                break;
            case FrameType.Backoff:
                message.Kind = InboundKind.Backoff;
                message.RequestId = envelope.RequestId;
                message.Value = envelope.RetryAfterMs;
                break;
            case FrameType.Error:
                message.Kind = InboundKind.Error;
                message.RequestId = envelope.RequestId;
                message.ErrorCode = (int)envelope.ErrorCode;
                message.Text = Encoding.UTF8.GetString(envelope.Reason.Span);
                break;
            case FrameType.Welcome:
                message.Kind = InboundKind.Welcome;
                break;
            case FrameType.Pong:
                message.Kind = InboundKind.Pong;
                break;
            default:
                message.Kind = InboundKind.Other;
                break;
        }

        return true;
    }
}

/// <summary>FastRelay over raw TCP: 4-byte big-endian length, then the envelope (src/FastRelay.Protocol RawFraming).</summary>
internal sealed class FastRelayTcpWire : FastRelayWire
{
    private const int MaxBodyBytes = 16 << 20;

    public override Targets.TargetKind Kind => Targets.TargetKind.FastRelayTcp;

    protected override int MaxFrameOverhead => RawFraming.HeaderSize;

    protected override int WriteFrame(Span<byte> destination, ReadOnlySpan<byte> body)
    {
        RawFraming.WriteHeader(destination, body.Length);
        body.CopyTo(destination[RawFraming.HeaderSize..]);
        return RawFraming.HeaderSize + body.Length;
    }

    protected override bool TryReadFrame(byte[] buffer, int offset, int count, out int consumed, out int bodyOffset, out int bodyLength, out InboundKind control)
    {
        // RawFraming.TryRead's rules (0 and oversized lengths are errors), read straight from the array: its
        // ReadOnlySequence path costs ~40 ns a message, which at millions of deliveries/s is CPU the server needs.
        control = InboundKind.Event;
        bodyOffset = bodyLength = consumed = 0;
        if (count < RawFraming.HeaderSize)
        {
            return false;
        }

        uint declared = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(offset));
        if (declared == 0 || declared > MaxBodyBytes)
        {
            throw new WireException($"bad length prefix from the server: {declared} bytes");
        }

        if (count - RawFraming.HeaderSize < declared)
        {
            return false;
        }

        bodyOffset = offset + RawFraming.HeaderSize;
        bodyLength = (int)declared;
        consumed = RawFraming.HeaderSize + bodyLength;
        return true;
    }
}
