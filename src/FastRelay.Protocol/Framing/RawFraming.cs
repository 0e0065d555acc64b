using System.Buffers;
using System.Buffers.Binary;

namespace FastRelay.Protocol;

/// <summary>Outcome of reading a length-prefixed frame.</summary>
public enum RawFrameStatus : byte
{
    /// <summary>A whole frame was read.</summary>
    Complete,
    /// <summary>More bytes are needed.</summary>
    Incomplete,
    /// <summary>The length prefix exceeds the limit: the connection must be closed.</summary>
    TooLarge,
    /// <summary>A zero-length frame: not a valid envelope.</summary>
    Empty,
}

/// <summary>Raw TCP / Unix socket framing: a 4-byte big-endian length, then that many envelope bytes.</summary>
public static class RawFraming
{
    public const int HeaderSize = 4;

    /// <summary>
    /// Reads one frame from the front of <paramref name="buffer"/>; on <see cref="RawFrameStatus.Complete"/>,
    /// <paramref name="body"/> is the envelope and <paramref name="buffer"/> is advanced past it.
    /// </summary>
    public static RawFrameStatus TryRead(ref ReadOnlySequence<byte> buffer, int maxBodyBytes, out ReadOnlySequence<byte> body, out uint declaredLength)
    {
        body = default;
        declaredLength = 0;
        if (buffer.Length < HeaderSize)
        {
            return RawFrameStatus.Incomplete;
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        declaredLength = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (declaredLength == 0)
        {
            return RawFrameStatus.Empty;
        }

        if (declaredLength > (uint)maxBodyBytes)
        {
            return RawFrameStatus.TooLarge;
        }

        if (buffer.Length - HeaderSize < declaredLength)
        {
            return RawFrameStatus.Incomplete;
        }

        body = buffer.Slice(HeaderSize, declaredLength);
        buffer = buffer.Slice(body.End);
        return RawFrameStatus.Complete;
    }

    /// <summary>Writes the 4-byte big-endian length prefix.</summary>
    public static void WriteHeader(Span<byte> destination, int bodyLength) =>
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)bodyLength);
}
