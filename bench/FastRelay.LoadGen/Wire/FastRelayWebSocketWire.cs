using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using FastRelay.LoadGen.Clients;

namespace FastRelay.LoadGen.Wire;

/// <summary>
/// FastRelay over WebSocket: the HTTP/1.1 upgrade done by hand, then one masked binary frame per envelope
/// (client → server) and unmasked frames parsed in place (server → client). No extensions, no fragmentation
/// on the way out; continuation frames from the server are refused (the server never fragments).
/// </summary>
internal sealed class FastRelayWebSocketWire(IPEndPoint endPoint) : FastRelayWire
{
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    private const int OpBinary = 0x2;
    private const int OpClose = 0x8;
    private const int OpPing = 0x9;
    private const int OpPong = 0xA;

    public override Targets.TargetKind Kind => Targets.TargetKind.FastRelayWebSocket;

    protected override int MaxFrameOverhead => 14; // 2 + 8 extended length + 4 mask key

    protected override async Task UpgradeAsync(ClientConnection connection, CancellationToken cancellationToken)
    {
        string key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        string request =
            $"GET /ws HTTP/1.1\r\nHost: {endPoint}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n";
        await connection.SendAsync(Encoding.ASCII.GetBytes(request), cancellationToken).ConfigureAwait(false);
        string head = await connection.ReadHttpHeadAsync(cancellationToken).ConfigureAwait(false);
        if (!head.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            throw new WireException($"WebSocket upgrade refused: {head.Split('\r')[0]}");
        }

        string expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));
        if (!head.Contains($"Sec-WebSocket-Accept: {expected}", StringComparison.OrdinalIgnoreCase))
        {
            throw new WireException("WebSocket upgrade: missing or wrong Sec-WebSocket-Accept");
        }
    }

    /// <summary>A masked FIN binary frame (RFC 6455 §5.2/§5.3: every client frame is masked).</summary>
    protected override int WriteFrame(Span<byte> destination, ReadOnlySpan<byte> body)
    {
        int length = body.Length;
        int header;
        destination[0] = 0x80 | OpBinary;
        if (length <= 125)
        {
            destination[1] = (byte)(0x80 | length);
            header = 2;
        }
        else if (length <= ushort.MaxValue)
        {
            destination[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)length);
            header = 4;
        }
        else
        {
            destination[1] = 0x80 | 127;
            BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)length);
            header = 10;
        }

        uint mask = (uint)Random.Shared.Next() | 1u; // any key; never all-zero
        BinaryPrimitives.WriteUInt32LittleEndian(destination[header..], mask);
        header += 4;
        Mask(body, destination.Slice(header, length), mask);
        return header + length;
    }

    private static void Mask(ReadOnlySpan<byte> source, Span<byte> destination, uint mask)
    {
        // The key bytes in wire order, as a little-endian word: XOR 4 bytes at a time, then the tail.
        int i = 0;
        for (; i + 4 <= source.Length; i += 4)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(destination[i..], BinaryPrimitives.ReadUInt32LittleEndian(source[i..]) ^ mask);
        }

        for (; i < source.Length; i++)
        {
            destination[i] = (byte)(source[i] ^ (byte)(mask >> (8 * (i & 3))));
        }
    }

    protected override bool TryReadFrame(byte[] buffer, int offset, int count, out int consumed, out int bodyOffset, out int bodyLength, out InboundKind control)
    {
        consumed = bodyOffset = bodyLength = 0;
        control = InboundKind.Event;
        if (count < 2)
        {
            return false;
        }

        int b0 = buffer[offset];
        int b1 = buffer[offset + 1];
        if ((b1 & 0x80) != 0)
        {
            throw new WireException("masked frame from the server");
        }

        if ((b0 & 0x80) == 0)
        {
            throw new WireException("fragmented frame from the server (this client does not reassemble)");
        }

        int header = 2;
        long length = b1 & 0x7F;
        if (length == 126)
        {
            if (count < 4)
            {
                return false;
            }

            length = BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(offset + 2));
            header = 4;
        }
        else if (length == 127)
        {
            if (count < 10)
            {
                return false;
            }

            length = (long)BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(offset + 2));
            header = 10;
            if (length > 16 << 20)
            {
                throw new WireException($"frame of {length} bytes from the server");
            }
        }

        if (count - header < length)
        {
            return false;
        }

        bodyOffset = offset + header;
        bodyLength = (int)length;
        consumed = header + bodyLength;
        control = (b0 & 0x0F) switch
        {
            OpBinary => InboundKind.Event,
            OpClose => InboundKind.Close,
            OpPing or OpPong => InboundKind.Other,
            int op => throw new WireException($"unexpected WebSocket opcode {op} from the server"),
        };
        return true;
    }
}
