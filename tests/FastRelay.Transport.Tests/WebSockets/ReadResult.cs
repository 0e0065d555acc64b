using System.Buffers;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

/// <summary>A copy of one reader result, taken before the next read invalidates its payload.</summary>
internal sealed record ReadResult(WebSocketReadStatus Status, WebSocketOpcode Opcode, byte[] Payload, ushort CloseCode, byte[] CloseReason, string? Error)
{
    public bool Equals(ReadResult? other) =>
        other is not null
        && Status == other.Status
        && Opcode == other.Opcode
        && Payload.AsSpan().SequenceEqual(other.Payload)
        && CloseCode == other.CloseCode
        && CloseReason.AsSpan().SequenceEqual(other.CloseReason)
        && Error == other.Error;

    public override int GetHashCode() => HashCode.Combine(Status, Opcode, Payload.Length, CloseCode);

    public override string ToString() => $"{Status} {Opcode} [{Convert.ToHexString(Payload)}] {CloseCode} {Error}";

    public static ReadResult From(WebSocketReadStatus status, in WebSocketMessage message) =>
        new(status, message.Opcode, message.Payload.ToArray(), message.CloseCode, message.CloseReason.ToArray(), message.Error);

    /// <summary>Reads until the reader needs more data or reaches a terminal result.</summary>
    public static List<ReadResult> ReadAll(WebSocketMessageReader reader, ref ReadOnlySequence<byte> buffer)
    {
        var results = new List<ReadResult>();
        while (true)
        {
            WebSocketReadStatus status = reader.TryRead(ref buffer, out WebSocketMessage message);
            if (status == WebSocketReadStatus.NeedMoreData)
            {
                return results;
            }

            results.Add(From(status, message));
            if (status is WebSocketReadStatus.Close or WebSocketReadStatus.ProtocolError)
            {
                return results;
            }
        }
    }

    public static List<ReadResult> ReadAll(WebSocketMessageReader reader, byte[] bytes)
    {
        var buffer = new ReadOnlySequence<byte>(bytes);
        return ReadAll(reader, ref buffer);
    }

    /// <summary>Reads a single result from <paramref name="bytes"/> with a fresh reader.</summary>
    public static ReadResult ReadOne(byte[] bytes, int maxMessageBytes = 1 << 20)
    {
        using var reader = new WebSocketMessageReader(maxMessageBytes);
        return Assert.Single(ReadAll(reader, bytes));
    }

    /// <summary>
    /// Feeds <paramref name="chunks"/> one at a time as a pipe would: bytes the reader left unconsumed are handed
    /// back together with the next chunk.
    /// </summary>
    public static List<ReadResult> ReadChunked(WebSocketMessageReader reader, IEnumerable<byte[]> chunks)
    {
        var results = new List<ReadResult>();
        byte[] pending = [];
        foreach (byte[] chunk in chunks)
        {
            ReadOnlySequence<byte> buffer = Sequences.FromSegments(pending.Length == 0 ? [chunk] : [pending, chunk]);
            results.AddRange(ReadAll(reader, ref buffer));
            pending = buffer.ToArray();
        }

        return results;
    }
}
