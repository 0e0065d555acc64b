using System.Buffers.Binary;
using System.Buffers.Text;
using System.Text;
using FastRelay.LoadGen.Clients;

namespace FastRelay.LoadGen.Wire;

/// <summary>
/// A minimal RESP2 client for Redis pub/sub: PING, SUBSCRIBE, PUBLISH, and an in-place parser for the replies
/// and the "message" pushes a subscribed connection receives.
/// </summary>
internal sealed class RespWire : WireProtocol
{
    private static readonly byte[] s_ping = "*1\r\n$4\r\nPING\r\n"u8.ToArray();

    public override Targets.TargetKind Kind => Targets.TargetKind.Redis;

    public override bool PublishReplyCountsReceivers => true;

    public override int MaxPublishBytes(int topicBytes, int payloadBytes) => 48 + topicBytes + payloadBytes;

    public override async Task OpenAsync(ClientConnection connection, int clientIndex, CancellationToken cancellationToken)
    {
        // Redis needs no handshake; a PING round trip proves the server has taken the connection on.
        await connection.SendAsync(s_ping, cancellationToken).ConfigureAwait(false);
        var reply = await connection.ReadInboundAsync(cancellationToken).ConfigureAwait(false);
        if (reply.Kind != InboundKind.Pong)
        {
            throw new WireException($"expected +PONG, got {reply.Kind} {reply.Text}");
        }
    }

    public override int WriteSubscribe(Span<byte> destination, ReadOnlyMemory<byte> topic, ulong requestId)
    {
        int n = Copy(destination, "*2\r\n$9\r\nSUBSCRIBE\r\n"u8);
        n += WriteBulk(destination[n..], topic.Span);
        return n;
    }

    public override int WritePublish(Span<byte> destination, ReadOnlyMemory<byte> topic, ReadOnlyMemory<byte> payload, ulong requestId, FastRelay.Protocol.EventFlags flags = 0)
    {
        int n = Copy(destination, "*3\r\n$7\r\nPUBLISH\r\n"u8);
        n += WriteBulk(destination[n..], topic.Span);
        n += WriteBulk(destination[n..], payload.Span);
        return n;
    }

    public override bool IsSubscribed(in Inbound message, ulong requestId) => message.Kind == InboundKind.Subscribed;

    private static int Copy(Span<byte> destination, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(destination);
        return bytes.Length;
    }

    private static int WriteBulk(Span<byte> destination, ReadOnlySpan<byte> value)
    {
        destination[0] = (byte)'$';
        Utf8Formatter.TryFormat(value.Length, destination[1..], out int digits);
        int n = 1 + digits;
        destination[n++] = (byte)'\r';
        destination[n++] = (byte)'\n';
        value.CopyTo(destination[n..]);
        n += value.Length;
        destination[n++] = (byte)'\r';
        destination[n++] = (byte)'\n';
        return n;
    }

    public override bool TryRead(byte[] buffer, int offset, int count, out int consumed, out Inbound message)
    {
        message = default;
        consumed = 0;
        var span = new ReadOnlySpan<byte>(buffer, offset, count);
        if (span.IsEmpty)
        {
            return false;
        }

        int pos = 0;
        switch (span[0])
        {
            case (byte)':':
                if (!TryReadIntegerLine(span, ref pos, out long integer))
                {
                    return false;
                }

                message.Kind = InboundKind.Integer;
                message.Value = integer;
                break;
            case (byte)'+':
                {
                    int end = span.IndexOf("\r\n"u8);
                    if (end < 0)
                    {
                        return false;
                    }

                    message.Kind = span[1..end].SequenceEqual("PONG"u8) ? InboundKind.Pong : InboundKind.Other;
                    pos = end + 2;
                    break;
                }

            case (byte)'-':
                {
                    int end = span.IndexOf("\r\n"u8);
                    if (end < 0)
                    {
                        return false;
                    }

                    message.Kind = InboundKind.Error;
                    message.Text = Encoding.UTF8.GetString(span[1..end]);
                    pos = end + 2;
                    break;
                }

            case (byte)'*':
                if (!TryReadPush(span, ref pos, ref message))
                {
                    return false;
                }

                break;
            default:
                throw new WireException($"unexpected RESP type byte 0x{span[0]:x2}");
        }

        consumed = pos;
        return true;
    }

    /// <summary>A pub/sub push: ["message", channel, payload] or ["subscribe", channel, count] (and friends).</summary>
    private static bool TryReadPush(ReadOnlySpan<byte> span, ref int pos, ref Inbound message)
    {
        if (!TryReadIntegerLine(span, ref pos, out long elements))
        {
            return false;
        }

        if (elements != 3)
        {
            throw new WireException($"unexpected RESP array of {elements} elements");
        }

        if (!TryReadBulk(span, ref pos, out int kindStart, out int kindLength)
            || !TryReadBulk(span, ref pos, out _, out _))
        {
            return false;
        }

        var kind = span.Slice(kindStart, kindLength);
        if (kind.SequenceEqual("message"u8))
        {
            if (!TryReadBulk(span, ref pos, out int payloadStart, out int payloadLength))
            {
                return false;
            }

            message.Kind = InboundKind.Event;
            message.SentTimestamp = payloadLength >= sizeof(long) ? BinaryPrimitives.ReadInt64LittleEndian(span.Slice(payloadStart)) : 0;
            return true;
        }

        // subscribe / unsubscribe: the third element is the subscription count.
        if (pos >= span.Length)
        {
            return false;
        }

        if (!TryReadIntegerLine(span, ref pos, out long subscriptions))
        {
            return false;
        }

        message.Kind = kind.SequenceEqual("subscribe"u8) ? InboundKind.Subscribed : InboundKind.Other;
        message.Value = subscriptions;
        return true;
    }

    /// <summary>Reads "$N\r\n" + N bytes + "\r\n"; start/length locate the bytes.</summary>
    private static bool TryReadBulk(ReadOnlySpan<byte> span, ref int pos, out int start, out int length)
    {
        start = length = 0;
        if (pos >= span.Length)
        {
            return false;
        }

        if (span[pos] != (byte)'$')
        {
            throw new WireException($"expected a RESP bulk string, got 0x{span[pos]:x2}");
        }

        int p = pos;
        if (!TryReadIntegerLine(span, ref p, out long n))
        {
            return false;
        }

        if (n < 0 || n > 64 << 20)
        {
            throw new WireException($"bad RESP bulk length {n}");
        }

        if (span.Length - p < n + 2)
        {
            return false;
        }

        start = p;
        length = (int)n;
        pos = p + length + 2;
        return true;
    }

    /// <summary>Reads a type byte, a decimal integer and CRLF (":12\r\n", "*3\r\n", "$7\r\n").</summary>
    private static bool TryReadIntegerLine(ReadOnlySpan<byte> span, ref int pos, out long value)
    {
        value = 0;
        int p = pos + 1;
        bool negative = false;
        if (p < span.Length && span[p] == (byte)'-')
        {
            negative = true;
            p++;
        }

        while (true)
        {
            if (p >= span.Length)
            {
                return false;
            }

            byte c = span[p];
            if (c == (byte)'\r')
            {
                break;
            }

            if ((uint)(c - '0') > 9)
            {
                throw new WireException($"bad RESP integer byte 0x{c:x2}");
            }

            value = value * 10 + (c - '0');
            p++;
        }

        if (p + 1 >= span.Length)
        {
            return false;
        }

        value = negative ? -value : value;
        pos = p + 2;
        return true;
    }
}
