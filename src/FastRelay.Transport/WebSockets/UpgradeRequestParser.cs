using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace FastRelay.Transport.WebSockets;

/// <summary>Validates the head of an HTTP/1.1 WebSocket upgrade request (RFC 6455 §4.2.1, RFC 9112 syntax).</summary>
/// <remarks>
/// Checks run in this order, the first failure wins: request-line syntax (400), method (405), header syntax (400),
/// Host (400), Upgrade and Connection (400), Sec-WebSocket-Version (426), Sec-WebSocket-Key (400).
/// The parser is strict where leniency has caused request-smuggling bugs: no obs-fold, no whitespace before ':',
/// no control characters, no duplicate Host, Sec-WebSocket-Key or Origin.
/// </remarks>
internal static class UpgradeRequestParser
{
    // RFC 9110 §5.6.2 tchar.
    private static readonly SearchValues<byte> TokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    private static readonly SearchValues<byte> Base64Chars =
        SearchValues.Create("+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="u8);

    /// <summary>Parses <paramref name="head"/>: the request line and header lines, without the final empty line.</summary>
    public static bool TryParse(ReadOnlySpan<byte> head, out WebSocketUpgradeRequest request, out HandshakeFailure failure)
    {
        request = default;
        ReadOnlySpan<byte> requestLine = NextLine(ref head);
        if (!TrySplitRequestLine(requestLine, out ReadOnlySpan<byte> method, out ReadOnlySpan<byte> target))
        {
            failure = new HandshakeFailure(400, "Malformed request line");
            return false;
        }

        if (!method.SequenceEqual("GET"u8))
        {
            failure = new HandshakeFailure(405, "Only GET can be upgraded to a WebSocket");
            return false;
        }

        string? host = null, key = null, origin = null, subProtocols = null;
        bool upgradeWebSocket = false, connectionUpgrade = false;
        int versionHeaders = 0;
        bool version13 = false;
        while (!head.IsEmpty)
        {
            if (!TrySplitHeader(NextLine(ref head), out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value))
            {
                failure = new HandshakeFailure(400, "Malformed header line");
                return false;
            }

            if (Ascii.EqualsIgnoreCase(name, "Host"u8))
            {
                if (!TrySetOnce(ref host, value))
                {
                    failure = new HandshakeFailure(400, "Duplicate Host header");
                    return false;
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "Upgrade"u8))
            {
                upgradeWebSocket |= ListContains(value, "websocket"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Connection"u8))
            {
                connectionUpgrade |= ListContains(value, "upgrade"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Sec-WebSocket-Key"u8))
            {
                if (!TrySetOnce(ref key, value))
                {
                    failure = new HandshakeFailure(400, "Duplicate Sec-WebSocket-Key header");
                    return false;
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "Sec-WebSocket-Version"u8))
            {
                versionHeaders++;
                version13 = value.SequenceEqual("13"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Origin"u8))
            {
                // Two origins would let an origin check pass on one and the application act on the other.
                if (!TrySetOnce(ref origin, value))
                {
                    failure = new HandshakeFailure(400, "Duplicate Origin header");
                    return false;
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "Sec-WebSocket-Protocol"u8))
            {
                // The header may be repeated; its values form one list (RFC 9110 §5.3).
                string values = Encoding.Latin1.GetString(value);
                subProtocols = subProtocols is null ? values : subProtocols + ", " + values;
            }
        }

        if (string.IsNullOrEmpty(host))
        {
            failure = new HandshakeFailure(400, "Missing Host header");
            return false;
        }

        if (!upgradeWebSocket)
        {
            failure = new HandshakeFailure(400, "Missing 'Upgrade: websocket' header");
            return false;
        }

        if (!connectionUpgrade)
        {
            failure = new HandshakeFailure(400, "Missing 'Connection: Upgrade' header");
            return false;
        }

        if (versionHeaders != 1 || !version13)
        {
            failure = new HandshakeFailure(426, "Unsupported Sec-WebSocket-Version; only 13 is supported");
            return false;
        }

        if (key is null || !IsValidKey(key))
        {
            failure = new HandshakeFailure(400, "Missing or invalid Sec-WebSocket-Key header");
            return false;
        }

        int query = target.IndexOf((byte)'?');
        string path = Encoding.ASCII.GetString(query < 0 ? target : target[..query]);
        string queryString = query < 0 ? string.Empty : Encoding.ASCII.GetString(target[(query + 1)..]);
        request = new WebSocketUpgradeRequest(path, queryString, host, key, origin, subProtocols);
        failure = default;
        return true;
    }

    /// <summary>Whether <paramref name="value"/> is a non-empty HTTP token (e.g. a subprotocol name).</summary>
    public static bool IsToken(ReadOnlySpan<byte> value) => !value.IsEmpty && !value.ContainsAnyExcept(TokenChars);

    private static ReadOnlySpan<byte> NextLine(ref ReadOnlySpan<byte> head)
    {
        int end = head.IndexOf("\r\n"u8);
        ReadOnlySpan<byte> line;
        if (end < 0)
        {
            line = head;
            head = default;
        }
        else
        {
            line = head[..end];
            head = head[(end + 2)..];
        }

        return line;
    }

    // request-line = method SP request-target SP HTTP-version, single spaces, origin-form target only.
    private static bool TrySplitRequestLine(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> method, out ReadOnlySpan<byte> target)
    {
        target = default;
        int space = line.IndexOf((byte)' ');
        method = space < 0 ? default : line[..space];
        if (!IsToken(method))
        {
            return false;
        }

        ReadOnlySpan<byte> rest = line[(space + 1)..];
        space = rest.IndexOf((byte)' ');
        if (space <= 0)
        {
            return false;
        }

        target = rest[..space];
        ReadOnlySpan<byte> version = rest[(space + 1)..];

        // Visible ASCII only: no spaces, controls or raw non-ASCII bytes in the target.
        return version.SequenceEqual("HTTP/1.1"u8)
            && target[0] == (byte)'/'
            && !target.ContainsAnyExceptInRange((byte)0x21, (byte)0x7E);
    }

    // field-line = field-name ":" OWS field-value OWS. A line starting with whitespace (obs-fold) fails as a bad name.
    private static bool TrySplitHeader(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        int colon = line.IndexOf((byte)':');
        name = colon < 0 ? default : line[..colon];
        value = colon < 0 ? default : line[(colon + 1)..].Trim(" \t"u8);
        return IsToken(name) && !ContainsControl(value);
    }

    private static bool ContainsControl(ReadOnlySpan<byte> value)
    {
        // CTLs other than HTAB, including bare CR and LF.
        return value.ContainsAnyInRange((byte)0x00, (byte)0x08)
            || value.ContainsAnyInRange((byte)0x0A, (byte)0x1F)
            || value.Contains((byte)0x7F);
    }

    private static bool TrySetOnce(ref string? field, ReadOnlySpan<byte> value)
    {
        if (field is not null)
        {
            return false;
        }

        field = Encoding.Latin1.GetString(value);
        return true;
    }

    /// <summary>Whether a comma-separated header value contains <paramref name="token"/> (ASCII case-insensitive).</summary>
    private static bool ListContains(ReadOnlySpan<byte> value, ReadOnlySpan<byte> token)
    {
        foreach (Range range in value.Split((byte)','))
        {
            if (Ascii.EqualsIgnoreCase(value[range].Trim(" \t"u8), token))
            {
                return true;
            }
        }

        return false;
    }

    // §4.1: a base64-encoded 16-byte value, i.e. 22 characters and "==".
    private static bool IsValidKey(string key)
    {
        Span<byte> utf8 = stackalloc byte[24];
        Span<byte> decoded = stackalloc byte[18];
        return key.Length == 24
            && Ascii.FromUtf16(key, utf8, out _) == OperationStatus.Done
            && !utf8.ContainsAnyExcept(Base64Chars)
            && Base64.DecodeFromUtf8(utf8, decoded, out _, out int written) == OperationStatus.Done
            && written == 16;
    }
}
