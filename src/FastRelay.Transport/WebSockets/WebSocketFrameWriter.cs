using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text.Unicode;

namespace FastRelay.Transport.WebSockets;

/// <summary>Writes server-to-client RFC 6455 frames: never masked, lengths in their minimal encoding.</summary>
public static class WebSocketFrameWriter
{
    /// <summary>The largest unmasked header: 2 bytes plus a 64-bit extended length.</summary>
    public const int MaxHeaderSize = 10;

    /// <summary>The largest payload of a control frame (§5.5).</summary>
    public const int MaxControlPayload = 125;

    // A close body is a 2-byte code followed by the reason, within the control-frame limit.
    private const int MaxCloseReasonBytes = MaxControlPayload - 2;

    // Bit per defined opcode: 0, 1, 2, 8, 9, 10.
    private const int DefinedOpcodes = 0b0000_0111_0000_0111;

    /// <summary>The header size for a payload of <paramref name="payloadLength"/> bytes: 2, 4 or 10.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int GetHeaderSize(long payloadLength)
    {
        if (payloadLength < 0)
        {
            ThrowNegativeLength();
        }

        return payloadLength <= 125 ? 2 : payloadLength <= ushort.MaxValue ? 4 : 10;
    }

    /// <summary>Writes a frame header into <paramref name="destination"/>; returns the bytes written (2, 4 or 10).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int WriteHeader(Span<byte> destination, WebSocketOpcode opcode, long payloadLength, bool fin = true)
    {
        ValidateFrame(opcode, payloadLength, fin);
        int size = GetHeaderSize(payloadLength);
        if (destination.Length < size)
        {
            ThrowDestinationTooShort();
        }

        destination[0] = (byte)((fin ? 0x80 : 0) | (int)opcode);
        if (size == 2)
        {
            destination[1] = (byte)payloadLength;
        }
        else if (size == 4)
        {
            destination[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payloadLength);
        }
        else
        {
            destination[1] = 127;
            BinaryPrimitives.WriteInt64BigEndian(destination[2..], payloadLength);
        }

        return size;
    }

    /// <summary>Writes a whole frame: header then payload.</summary>
    public static void WriteFrame(IBufferWriter<byte> output, WebSocketOpcode opcode, ReadOnlySpan<byte> payload, bool fin = true)
    {
        Span<byte> span = output.GetSpan(MaxHeaderSize);
        output.Advance(WriteHeader(span, opcode, payload.Length, fin));
        if (!payload.IsEmpty)
        {
            output.Write(payload);
        }
    }

    /// <summary>Writes a pong echoing <paramref name="payload"/> (at most 125 bytes).</summary>
    public static void WritePong(IBufferWriter<byte> output, ReadOnlySpan<byte> payload) =>
        WriteFrame(output, WebSocketOpcode.Pong, payload);

    /// <summary>Writes a ping carrying <paramref name="payload"/> (at most 125 bytes).</summary>
    public static void WritePing(IBufferWriter<byte> output, ReadOnlySpan<byte> payload) =>
        WriteFrame(output, WebSocketOpcode.Ping, payload);

    /// <summary>
    /// Writes a close frame with <paramref name="code"/> and the UTF-8 <paramref name="utf8Reason"/>, truncated to
    /// 123 bytes without splitting a UTF-8 sequence.
    /// </summary>
    public static void WriteClose(IBufferWriter<byte> output, ushort code, ReadOnlySpan<byte> utf8Reason)
    {
        if (!WebSocketCloseCode.IsValid(code))
        {
            ThrowInvalidCloseCode(code);
        }

        int reasonLength = Utf8Truncation.FitLength(utf8Reason, MaxCloseReasonBytes);
        int bodyLength = 2 + reasonLength;
        Span<byte> span = output.GetSpan(2 + bodyLength);
        int written = WriteHeader(span, WebSocketOpcode.Close, bodyLength);
        BinaryPrimitives.WriteUInt16BigEndian(span[written..], code);
        utf8Reason[..reasonLength].CopyTo(span[(written + 2)..]);
        output.Advance(written + bodyLength);
    }

    /// <summary>Writes a close frame with a string reason (e.g. <see cref="WebSocketMessage.Error"/>), truncated to 123 UTF-8 bytes.</summary>
    public static void WriteClose(IBufferWriter<byte> output, ushort code, string reason)
    {
        Span<byte> utf8 = stackalloc byte[MaxCloseReasonBytes];

        // Utf8.FromUtf16 stops before a character that does not fit, so a truncated reason stays valid UTF-8.
        Utf8.FromUtf16(reason, utf8, out _, out int written, replaceInvalidSequences: true, isFinalBlock: true);
        WriteClose(output, code, utf8[..written]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ValidateFrame(WebSocketOpcode opcode, long payloadLength, bool fin)
    {
        if ((uint)opcode > 0xF || ((1 << (int)opcode) & DefinedOpcodes) == 0)
        {
            ThrowUndefinedOpcode(opcode);
        }

        // Control frames (opcode bit 3) cannot be fragmented and carry at most 125 bytes (§5.5).
        if (((int)opcode & 0x8) != 0 && (!fin || (ulong)payloadLength > MaxControlPayload))
        {
            ThrowInvalidControlFrame();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNegativeLength() => throw new ArgumentOutOfRangeException("payloadLength", "Payload length cannot be negative.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowDestinationTooShort() => throw new ArgumentException("Destination is shorter than the frame header.", "destination");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowUndefinedOpcode(WebSocketOpcode opcode) => throw new ArgumentOutOfRangeException(nameof(opcode), opcode, "Not a defined WebSocket opcode.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInvalidControlFrame() => throw new ArgumentException("Control frames must have FIN set and a payload of at most 125 bytes.", "payload");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInvalidCloseCode(ushort code) => throw new ArgumentOutOfRangeException(nameof(code), code, "Not a close code that may be sent.");
}
