using System.Buffers;
using System.Net.WebSockets;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// WebSocket transport: one binary message per envelope. Messages that arrive in several parts are reassembled into a
/// pooled buffer that grows up to MaxMessageBytes and shrinks back after an unusually large message.
/// </summary>
internal sealed class WebSocketTransport : IClientTransport
{
    private const int InitialReceiveBytes = 16 * 1024;

    private readonly ClientWebSocket _socket;
    private readonly int _maxMessageBytes;

    private WebSocketTransport(ClientWebSocket socket, int maxMessageBytes)
    {
        _socket = socket;
        _maxMessageBytes = maxMessageBytes;
    }

    public static async Task<WebSocketTransport> ConnectAsync(Uri uri, int maxMessageBytes, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        try
        {
            await socket.ConnectAsync(uri, ct).ConfigureAwait(false);
            return new WebSocketTransport(socket, maxMessageBytes);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct) =>
        _socket.SendAsync(envelope, WebSocketMessageType.Binary, endOfMessage: true, ct);

    // ClientWebSocket writes each message as it is sent; there is nothing to gather.
    public ValueTask FlushAsync(CancellationToken ct) => ValueTask.CompletedTask;

    public async Task<string?> ReceiveAsync(IEnvelopeReceiver receiver, CancellationToken ct)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(InitialReceiveBytes);
        try
        {
            while (true)
            {
                int length = 0;
                while (true)
                {
                    if (length == buffer.Length)
                    {
                        buffer = Grow(buffer, length);
                    }

                    var result = await _socket.ReceiveAsync(buffer.AsMemory(length), ct).ConfigureAwait(false);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return await AnswerCloseAsync(ct).ConfigureAwait(false);
                    }

                    if (result.MessageType != WebSocketMessageType.Binary)
                    {
                        throw new FastRelayConnectionException(ErrorCode.BadFrame, "the server sent a text WebSocket message; envelopes are binary");
                    }

                    length += result.Count;
                    if (result.EndOfMessage)
                    {
                        break;
                    }
                }

                receiver.OnEnvelope(buffer.AsMemory(0, length));
                if (buffer.Length > InitialReceiveBytes * 4)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = ArrayPool<byte>.Shared.Rent(InitialReceiveBytes);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private byte[] Grow(byte[] buffer, int length)
    {
        if (length >= _maxMessageBytes)
        {
            throw new FastRelayConnectionException(ErrorCode.TooLarge,
                $"the server sent a WebSocket message over MaxMessageBytes ({_maxMessageBytes})");
        }

        var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, _maxMessageBytes + 1L));
        buffer.AsSpan(0, length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(buffer);
        return larger;
    }

    /// <summary>Completes the close handshake the server started and returns its reason.</summary>
    private async Task<string?> AnswerCloseAsync(CancellationToken ct)
    {
        string? reason = _socket.CloseStatusDescription is { Length: > 0 } description
            ? $"{description} (WebSocket close {(int?)_socket.CloseStatus})"
            : _socket.CloseStatus is { } status ? $"WebSocket close {(int)status} {status}" : null;
        if (_socket.State == WebSocketState.CloseReceived)
        {
            try
            {
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, ct).ConfigureAwait(false);
            }
            catch (WebSocketException)
            {
                // The server did not wait for our close frame.
            }
        }

        return reason;
    }

    public async ValueTask CloseAsync(CancellationToken ct)
    {
        if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "client closing", ct).ConfigureAwait(false);
        }
    }

    public void Abort() => _socket.Abort();

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
