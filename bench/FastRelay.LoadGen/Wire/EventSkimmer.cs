using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace FastRelay.LoadGen.Wire;

/// <summary>
/// Fast path for the one hot message, EVENT: walks the MessagePack map in place and picks out type, seq and the
/// payload's location, skipping every other field. Anything it does not expect (a non-EVENT type, a key that is
/// not a fixint, an extension type) makes it return false and the caller decodes with EnvelopeCodec.
/// Why: EnvelopeCodec.TryDecode (MessagePackReader over a ReadOnlySequence) measured 220–400 ns per 129-byte
/// EVENT on the 2-core benchmark box; at millions of deliveries per second that alone would make the load
/// generator, not the server, the bottleneck (RESP pushes are parsed in place for a few ns).
/// </summary>
internal static class EventSkimmer
{
    private const int KeyType = 0;
    private const int KeySeq = 4;
    private const int KeyPayload = 10;
    private const int EventType = 7;

    public static bool TryReadEvent(ReadOnlySpan<byte> body, out long seq, out int payloadOffset, out int payloadLength)
    {
        seq = 0;
        payloadOffset = payloadLength = 0;
        int pos = 0;
        if (body.IsEmpty)
        {
            return false;
        }

        int count;
        byte head = body[pos++];
        if ((head & 0xF0) == 0x80)
        {
            count = head & 0x0F;
        }
        else if (head == 0xDE && body.Length >= 3)
        {
            count = BinaryPrimitives.ReadUInt16BigEndian(body[1..]);
            pos = 3;
        }
        else
        {
            return false;
        }

        bool isEvent = false;
        bool hasPayload = false;
        for (int i = 0; i < count; i++)
        {
            if (pos >= body.Length || body[pos] > 0x7F)
            {
                return false; // keys are small fixints in every frame the server writes
            }

            int key = body[pos++];
            if (pos >= body.Length)
            {
                return false;
            }

            byte code = body[pos];
            switch (key)
            {
                case KeyType:
                    if (code != EventType)
                    {
                        return false;
                    }

                    isEvent = true;
                    pos++;
                    break;
                case KeySeq:
                    if (!TryReadUInt(body, ref pos, out ulong s))
                    {
                        return false;
                    }

                    seq = (long)s;
                    break;
                case KeyPayload:
                    if (!TryReadBin(body, ref pos, out payloadOffset, out payloadLength))
                    {
                        return false;
                    }

                    hasPayload = true;
                    break;
                default:
                    if (!TrySkip(body, ref pos))
                    {
                        return false;
                    }

                    break;
            }
        }

        return isEvent && hasPayload && pos == body.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryReadUInt(ReadOnlySpan<byte> b, ref int pos, out ulong value)
    {
        value = 0;
        byte code = b[pos];
        if (code <= 0x7F)
        {
            value = code;
            pos++;
            return true;
        }

        int size = code switch { 0xCC => 1, 0xCD => 2, 0xCE => 4, 0xCF => 8, _ => -1 };
        if (size < 0 || pos + 1 + size > b.Length)
        {
            return false;
        }

        var v = b.Slice(pos + 1, size);
        value = size switch
        {
            1 => v[0],
            2 => BinaryPrimitives.ReadUInt16BigEndian(v),
            4 => BinaryPrimitives.ReadUInt32BigEndian(v),
            _ => BinaryPrimitives.ReadUInt64BigEndian(v),
        };
        pos += 1 + size;
        return true;
    }

    private static bool TryReadBin(ReadOnlySpan<byte> b, ref int pos, out int offset, out int length)
    {
        offset = length = 0;
        int header;
        long n;
        switch (b[pos])
        {
            case 0xC4:
                if (pos + 2 > b.Length) return false;
                n = b[pos + 1];
                header = 2;
                break;
            case 0xC5:
                if (pos + 3 > b.Length) return false;
                n = BinaryPrimitives.ReadUInt16BigEndian(b[(pos + 1)..]);
                header = 3;
                break;
            case 0xC6:
                if (pos + 5 > b.Length) return false;
                n = BinaryPrimitives.ReadUInt32BigEndian(b[(pos + 1)..]);
                header = 5;
                break;
            default:
                return false;
        }

        if (pos + header + n > b.Length)
        {
            return false;
        }

        offset = pos + header;
        length = (int)n;
        pos = offset + length;
        return true;
    }

    /// <summary>Skips one scalar, string or binary value; false for anything else (maps, arrays, extensions).</summary>
    private static bool TrySkip(ReadOnlySpan<byte> b, ref int pos)
    {
        byte code = b[pos];
        long skip;
        if (code <= 0x7F || code >= 0xE0 || code is 0xC0 or 0xC2 or 0xC3)
        {
            skip = 1; // fixint, negative fixint, nil, bool
        }
        else if ((code & 0xE0) == 0xA0)
        {
            skip = 1 + (code & 0x1F); // fixstr
        }
        else
        {
            switch (code)
            {
                case 0xCC or 0xD0: skip = 2; break;
                case 0xCD or 0xD1: skip = 3; break;
                case 0xCE or 0xD2 or 0xCA: skip = 5; break;
                case 0xCF or 0xD3 or 0xCB: skip = 9; break;
                case 0xD9 or 0xC4:
                    if (pos + 2 > b.Length) return false;
                    skip = 2 + b[pos + 1];
                    break;
                case 0xDA or 0xC5:
                    if (pos + 3 > b.Length) return false;
                    skip = 3 + BinaryPrimitives.ReadUInt16BigEndian(b[(pos + 1)..]);
                    break;
                case 0xDB or 0xC6:
                    if (pos + 5 > b.Length) return false;
                    skip = 5 + (long)BinaryPrimitives.ReadUInt32BigEndian(b[(pos + 1)..]);
                    break;
                default:
                    return false;
            }
        }

        if (pos + skip > b.Length)
        {
            return false;
        }

        pos += (int)skip;
        return true;
    }
}
