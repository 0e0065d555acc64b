using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;

namespace FastRelay.Client.Tests.Fakes;

/// <summary>
/// A server-side WebSocket without an HTTP server: reads the upgrade request by hand, answers 101, then lets
/// <see cref="WebSocket.CreateFromStream(Stream, WebSocketCreationOptions)"/> do the framing.
/// </summary>
internal sealed class WebSocketWire : IFakeWire
{
    private const string Rfc6455Guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    private readonly Socket _socket;
    private readonly WebSocket _webSocket;

    private WebSocketWire(Socket socket, WebSocket webSocket)
    {
        _socket = socket;
        _webSocket = webSocket;
    }

    /// <summary>The request line of the upgrade request, e.g. "GET /ws HTTP/1.1".</summary>
    public string RequestLine { get; private init; } = "";

    /// <summary>Size of the parts <see cref="WriteAsync"/> splits each message into (0 = one part).</summary>
    public int FragmentBytes { get; set; }

    public static async Task<WebSocketWire> AcceptAsync(Socket socket, CancellationToken ct)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        string request = await ReadHeadersAsync(stream, ct);
        string[] lines = request.Split("\r\n");
        string key = lines.Single(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))
            .Split(':', 2)[1].Trim();
        string accept = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + Rfc6455Guid)));
        string response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Accept: {accept}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(response), ct);
        var webSocket = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });
        return new WebSocketWire(socket, webSocket) { RequestLine = lines[0] };
    }

    private static async Task<string> ReadHeadersAsync(Stream stream, CancellationToken ct)
    {
        // Byte by byte so nothing after the blank line is consumed (the client sends nothing before the 101 anyway).
        var bytes = new List<byte>();
        var one = new byte[1];
        while (bytes.Count < 4 || !(bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n'))
        {
            await stream.ReadExactlyAsync(one, ct);
            bytes.Add(one[0]);
        }

        return Encoding.ASCII.GetString([.. bytes]);
    }

    public async Task<byte[]?> ReadAsync(CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await _webSocket.ReceiveAsync(buffer.AsMemory(), ct);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                if (_webSocket.State == WebSocketState.CloseReceived)
                {
                    await _webSocket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, ct);
                }

                return null;
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return message.ToArray();
            }
        }
    }

    public async Task WriteAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct)
    {
        int part = FragmentBytes > 0 ? FragmentBytes : envelope.Length;
        for (int offset = 0; offset < envelope.Length || offset == 0; offset += part)
        {
            int length = Math.Min(part, envelope.Length - offset);
            bool last = offset + length >= envelope.Length;
            await _webSocket.SendAsync(envelope.Slice(offset, length), WebSocketMessageType.Binary, last, ct);
            if (last)
            {
                break;
            }
        }
    }

    public Task WriteRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct) =>
        _webSocket.SendAsync(bytes, WebSocketMessageType.Binary, endOfMessage: true, ct).AsTask();

    /// <summary>Closes with a WebSocket close frame carrying <paramref name="reason"/>.</summary>
    public Task CloseAsync(string reason, CancellationToken ct) =>
        _webSocket.CloseOutputAsync(WebSocketCloseStatus.PolicyViolation, reason, ct);

    public void Abort()
    {
        _webSocket.Abort();
        _socket.Close(0);
    }

    public ValueTask DisposeAsync()
    {
        _webSocket.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
