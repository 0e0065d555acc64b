using System.Buffers;
using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Unicode;

namespace FastRelay.Transport.WebSockets;

/// <summary>The server side of the RFC 6455 §4 opening handshake over HTTP/1.1.</summary>
/// <remarks>
/// A non-GET method is answered 405 with <c>Allow: GET</c> (the method is known to be wrong, the request is not
/// malformed); a request over the size limit is answered 431. See <see cref="UpgradeRequestParser"/> for the
/// order of the checks. Only origin-form targets (<c>/path?query</c>) are accepted.
/// </remarks>
public static class WebSocketHandshake
{
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    // Base64 of a 20-byte SHA-1 hash.
    private const int AcceptLength = 28;

    // A real key is 24 characters; anything much longer is a caller bug, not something to hash on the stack.
    private const int MaxKeyLength = 128;

    /// <summary>
    /// Parses one upgrade request from the front of <paramref name="buffer"/>. On <see cref="HandshakeStatus.Accepted"/>
    /// the buffer is advanced past the request, so bytes pipelined behind it stay in the buffer; otherwise it is unchanged.
    /// </summary>
    public static HandshakeStatus TryParse(ref ReadOnlySequence<byte> buffer, int maxRequestBytes, out WebSocketUpgradeRequest request, out HandshakeFailure failure)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxRequestBytes);
        request = default;
        failure = default;

        // Search only within the limit: a client cannot make us scan (or wait for) more than maxRequestBytes.
        ReadOnlySequence<byte> window = buffer.Length > maxRequestBytes ? buffer.Slice(0, maxRequestBytes) : buffer;
        SequenceReader<byte> reader = new(window);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> head, "\r\n\r\n"u8, advancePastDelimiter: true))
        {
            if (buffer.Length >= maxRequestBytes)
            {
                failure = new HandshakeFailure(431, "Request header fields too large");
                return HandshakeStatus.Rejected;
            }

            return HandshakeStatus.NeedMoreData;
        }

        // Cold path: a handshake happens once per connection, so a copy of a multi-segment head is fine.
        ReadOnlySpan<byte> headSpan = head.IsSingleSegment ? head.FirstSpan : head.ToArray();
        if (!UpgradeRequestParser.TryParse(headSpan, out request, out failure))
        {
            return HandshakeStatus.Rejected;
        }

        buffer = buffer.Slice(reader.Position);
        return HandshakeStatus.Accepted;
    }

    /// <summary>
    /// Writes the <c>101 Switching Protocols</c> response for <paramref name="key"/>, selecting
    /// <paramref name="subProtocol"/> when given (it must be one the client offered).
    /// </summary>
    public static void WriteAccept(IBufferWriter<byte> output, string key, string? subProtocol = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(key);
        if (subProtocol is not null && !IsAsciiToken(subProtocol))
        {
            ThrowInvalidSubProtocol();
        }

        Span<byte> span = output.GetSpan(AcceptResponseLength + (subProtocol is null ? 0 : 64 + subProtocol.Length));
        output.Advance(WriteAccept(span, key, subProtocol));
    }

    /// <summary>Length of the <c>101</c> response without a subprotocol.</summary>
    internal const int AcceptResponseLength = 129;

    /// <summary>Writes the <c>101</c> response into <paramref name="span"/> (no buffer writer); returns its length.</summary>
    internal static int WriteAccept(Span<byte> span, string key, string? subProtocol = null)
    {
        Span<byte> accept = stackalloc byte[AcceptLength];
        ComputeAccept(key, accept);

        ReadOnlySpan<byte> start = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "u8;
        ReadOnlySpan<byte> protocolHeader = "\r\nSec-WebSocket-Protocol: "u8;
        int written = Append(span, 0, start);
        written = Append(span, written, accept);
        if (subProtocol is not null)
        {
            written = Append(span, written, protocolHeader);
            written += Encoding.ASCII.GetBytes(subProtocol, span[written..]);
        }

        return Append(span, written, "\r\n\r\n"u8);
    }

    /// <summary>
    /// Writes a complete plain-text error response for <paramref name="failure"/> with <c>Connection: close</c>;
    /// 405 adds <c>Allow: GET</c>, 426 adds <c>Sec-WebSocket-Version: 13</c>.
    /// </summary>
    public static void WriteReject(IBufferWriter<byte> output, in HandshakeFailure failure)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (failure.StatusCode == 0)
        {
            ThrowDefaultFailure();
        }

        string reason = failure.Reason;
        int bodyLength = Encoding.UTF8.GetByteCount(reason);
        string phrase = ReasonPhrase(failure.StatusCode);
        string extra = failure.StatusCode switch
        {
            405 => "Allow: GET\r\n",
            426 => "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            _ => string.Empty,
        };

        // Every part is ASCII but the body; 128 covers the fixed text and the numbers.
        Span<byte> span = output.GetSpan(128 + phrase.Length + extra.Length + bodyLength);
        bool fits = Utf8.TryWrite(
            span,
            $"HTTP/1.1 {failure.StatusCode} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {bodyLength}\r\nConnection: close\r\n{extra}\r\n{reason}",
            out int written);
        if (!fits)
        {
            ThrowResponseTooLarge();
        }

        output.Advance(written);
    }

    /// <summary>Writes base64(SHA-1(key + GUID)) (§4.2.2) into <paramref name="destination"/> (28 bytes).</summary>
    internal static void ComputeAccept(string key, Span<byte> destination)
    {
        if (key.Length > MaxKeyLength)
        {
            ThrowInvalidKey();
        }

        Span<byte> input = stackalloc byte[MaxKeyLength + AcceptGuid.Length];
        if (Ascii.FromUtf16(key, input, out int keyBytes) != OperationStatus.Done)
        {
            ThrowInvalidKey();
        }

        keyBytes += Encoding.ASCII.GetBytes(AcceptGuid, input[keyBytes..]);
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(input[..keyBytes], hash);
        Base64.EncodeToUtf8(hash, destination, out _, out _);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Append(Span<byte> destination, int offset, ReadOnlySpan<byte> value)
    {
        value.CopyTo(destination[offset..]);
        return offset + value.Length;
    }

    private static bool IsAsciiToken(string value)
    {
        Span<byte> ascii = stackalloc byte[Math.Min(value.Length, 256)];
        return value.Length <= ascii.Length
            && Ascii.FromUtf16(value, ascii, out int written) == OperationStatus.Done
            && UpgradeRequestParser.IsToken(ascii[..written]);
    }

    private static string ReasonPhrase(int statusCode) => statusCode switch
    {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => statusCode < 500 ? "Client Error" : "Server Error",
    };

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInvalidSubProtocol() => throw new ArgumentException("The subprotocol must be a non-empty HTTP token.", "subProtocol");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowInvalidKey() => throw new ArgumentException("The key must be short ASCII text.", "key");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowResponseTooLarge() => throw new InvalidOperationException("The reject response outgrew its size estimate.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowDefaultFailure() => throw new ArgumentException("A default HandshakeFailure has no status code.", "failure");
}
