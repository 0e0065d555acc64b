using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FastRelay.Protocol;
using FastRelay.Transport.Tests.WebSockets;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>One frame as the server sent it.</summary>
internal sealed record ServerFrame(bool Fin, WebSocketOpcode Opcode, byte[] Payload)
{
    public ushort CloseCode => Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : WebSocketCloseCode.NoStatusReceived;

    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : string.Empty;

    public override string ToString() => Opcode == WebSocketOpcode.Close
        ? $"Close {CloseCode} \"{CloseReason}\""
        : $"{Opcode}{(Fin ? "" : " (not final)")} [{Payload.Length} bytes] {Convert.ToHexString(Payload, 0, Math.Min(Payload.Length, 32))}";
}

/// <summary>The head (and body, by Content-Length) of an HTTP response.</summary>
internal sealed record HttpResponse(string StatusLine, IReadOnlyList<KeyValuePair<string, string>> Headers, string Body)
{
    /// <summary>The values of a header, in order (case-insensitive name).</summary>
    public string[] Values(string name) =>
        [.. Headers.Where(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value)];

    /// <summary>The single value of a header; fails when it is missing or repeated.</summary>
    public string Single(string name) => Assert.Single(Values(name));
}

/// <summary>
/// A WebSocket client over a plain socket: the upgrade request is written by hand and frames are built with
/// <see cref="ClientFrame"/> (masked unless told otherwise), so tests can send exactly what a broken or hostile
/// client would. Server frames are parsed strictly (no mask, no RSV bits).
/// </summary>
internal sealed class WsClient : SocketClient, IEnvelopeClient
{
    /// <summary>The RFC 6455 §1.3 sample key and its accept value.</summary>
    public const string SampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
    public const string SampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    private WsClient(Socket socket)
        : base(socket)
    {
    }

    public static async Task<WsClient> ConnectAsync(IPEndPoint endPoint, int receiveBufferBytes = 0) =>
        new(await ConnectTcpSocketAsync(endPoint, receiveBufferBytes));

    /// <summary>Connects and completes the upgrade at /ws (asserting 101); HELLO is not sent.</summary>
    public static async Task<WsClient> OpenAsync(IPEndPoint endPoint, int receiveBufferBytes = 0)
    {
        var client = await ConnectAsync(endPoint, receiveBufferBytes);
        try
        {
            var response = await client.HandshakeAsync(UpgradeRequest());
            Assert.Equal("HTTP/1.1 101 Switching Protocols", response.StatusLine);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>A valid upgrade request; every part can be replaced or left out (null).</summary>
    public static string UpgradeRequest(
        string requestLine = "GET /ws HTTP/1.1",
        string? host = "127.0.0.1",
        string? upgrade = "websocket",
        string? connection = "Upgrade",
        string? key = SampleKey,
        string? version = "13",
        params string[] extraHeaders)
    {
        var request = new StringBuilder(requestLine).Append("\r\n");
        void Header(string name, string? value)
        {
            if (value is not null)
            {
                request.Append(name).Append(": ").Append(value).Append("\r\n");
            }
        }

        Header("Host", host);
        Header("Upgrade", upgrade);
        Header("Connection", connection);
        Header("Sec-WebSocket-Key", key);
        Header("Sec-WebSocket-Version", version);
        foreach (string header in extraHeaders)
        {
            request.Append(header).Append("\r\n");
        }

        return request.Append("\r\n").ToString();
    }

    /// <summary>Sends <paramref name="request"/> and reads the response head, plus its body when it has a Content-Length.</summary>
    public async Task<HttpResponse> HandshakeAsync(string request)
    {
        await SendRawAsync(request);
        return await ReadHttpResponseAsync();
    }

    public async Task<HttpResponse> ReadHttpResponseAsync()
    {
        byte[] head = await ReadThroughAsync("\r\n\r\n"u8.ToArray(), "the HTTP response head");
        string[] lines = Encoding.Latin1.GetString(head, 0, head.Length - 4).Split("\r\n");
        var headers = new List<KeyValuePair<string, string>>();
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            Assert.True(colon > 0, $"Malformed response header line \"{line}\"");
            headers.Add(new(line[..colon], line[(colon + 1)..].Trim()));
        }

        string body = string.Empty;
        var length = headers.Where(h => string.Equals(h.Key, "Content-Length", StringComparison.OrdinalIgnoreCase)).ToList();
        if (length.Count > 0)
        {
            int n = int.Parse(Assert.Single(length).Value, System.Globalization.CultureInfo.InvariantCulture);
            body = Encoding.UTF8.GetString(await ReadExactAsync(n, "the HTTP response body"));
        }

        return new HttpResponse(lines[0], headers, body);
    }

    public Task SendFrameAsync(WebSocketOpcode opcode, ReadOnlySpan<byte> payload, bool fin = true, bool masked = true, byte rsv = 0) =>
        SendRawAsync(ClientFrame.Build(opcode, payload, fin, masked, rsv));

    public Task SendEnvelopeAsync(byte[] envelope) => SendFrameAsync(WebSocketOpcode.Binary, envelope);

    public Task SendCloseAsync(ushort code, string reason) => SendRawAsync(ClientFrame.Close(code, Encoding.UTF8.GetBytes(reason)));

    /// <summary>Reads one server frame and checks the rules a server must follow (§5.1, §5.2).</summary>
    public async Task<ServerFrame> ReadFrameAsync()
    {
        byte[] header = await ReadExactAsync(2, "a WebSocket frame header");
        Assert.True((header[0] & 0x70) == 0, $"The server set RSV bits: 0x{header[0]:X2}");
        Assert.True((header[1] & 0x80) == 0, "The server masked a frame");
        var opcode = (WebSocketOpcode)(header[0] & 0x0F);
        long length = header[1] & 0x7F;
        if (length == 126)
        {
            length = BinaryPrimitives.ReadUInt16BigEndian(await ReadExactAsync(2, "a 16-bit frame length"));
            Assert.True(length > 125, "The server used a non-minimal 16-bit length");
        }
        else if (length == 127)
        {
            length = BinaryPrimitives.ReadInt64BigEndian(await ReadExactAsync(8, "a 64-bit frame length"));
            Assert.True(length > ushort.MaxValue, "The server used a non-minimal 64-bit length");
        }

        byte[] payload = length == 0 ? [] : await ReadExactAsync(checked((int)length), "a frame payload");
        return new ServerFrame((header[0] & 0x80) != 0, opcode, payload);
    }

    /// <summary>Reads the next frame, which must be a whole binary message holding one envelope.</summary>
    public async Task<Envelope> ReadEnvelopeAsync()
    {
        var frame = await ReadFrameAsync();
        Assert.True(frame.Opcode == WebSocketOpcode.Binary && frame.Fin, $"Expected a binary message with an envelope, got {frame}");
        return Envelopes.Decode(frame.Payload);
    }

    /// <summary>
    /// Asserts the server's side of a close: a close frame with <paramref name="code"/> and <paramref name="reason"/>,
    /// then the end of the TCP stream. Unless <paramref name="reply"/> is false (we started the close), the client
    /// answers with its own close frame first, as RFC 6455 §5.5.1 asks.
    /// </summary>
    public async Task ExpectCloseAsync(ushort code, string reason, bool reply = true)
    {
        var frame = await ReadFrameAsync();
        Assert.True(frame.Opcode == WebSocketOpcode.Close, $"Expected a close frame {code} \"{reason}\", got {frame}");
        Assert.True(frame.Fin);
        Assert.Equal((code, reason), (frame.CloseCode, frame.CloseReason));
        if (reply)
        {
            await SendRawAsync(ClientFrame.Close(code));
        }

        await ExpectEndOfStreamAsync();
    }
}
