using System.Buffers.Binary;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

/// <summary>Builds client-to-server frames the way a browser would, plus the malformed ones a hostile client might send.</summary>
internal static class ClientFrame
{
    public static readonly byte[] DefaultKey = [0x37, 0xFA, 0x21, 0x3D];

    public static byte[] Build(
        WebSocketOpcode opcode,
        ReadOnlySpan<byte> payload,
        bool fin = true,
        bool masked = true,
        byte rsv = 0,
        byte[]? key = null,
        ulong? declaredLength = null)
    {
        key ??= DefaultKey;
        ulong length = declaredLength ?? (ulong)payload.Length;
        var frame = new List<byte> { (byte)((fin ? 0x80 : 0) | (rsv << 4) | (int)opcode) };
        byte maskBit = masked ? (byte)0x80 : (byte)0;
        if (length <= 125)
        {
            frame.Add((byte)(maskBit | (byte)length));
        }
        else if (length <= ushort.MaxValue)
        {
            frame.Add((byte)(maskBit | 126));
            var extended = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(extended, (ushort)length);
            frame.AddRange(extended);
        }
        else
        {
            frame.Add((byte)(maskBit | 127));
            var extended = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(extended, length);
            frame.AddRange(extended);
        }

        if (masked)
        {
            frame.AddRange(key);
        }

        for (int i = 0; i < payload.Length; i++)
        {
            frame.Add(masked ? (byte)(payload[i] ^ key[i & 3]) : payload[i]);
        }

        return [.. frame];
    }

    public static byte[] Close(ushort code, ReadOnlySpan<byte> reason = default)
    {
        var body = new byte[2 + reason.Length];
        BinaryPrimitives.WriteUInt16BigEndian(body, code);
        reason.CopyTo(body.AsSpan(2));
        return Build(WebSocketOpcode.Close, body);
    }

    public static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
