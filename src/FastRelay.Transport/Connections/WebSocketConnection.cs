using System.Buffers;
using System.Net.Sockets;
using System.Text;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Connections;

/// <summary>
/// RFC 6455 connection: HTTP/1.1 upgrade, then one binary message per envelope. Pings are answered from the
/// writer with the same payload; protocol violations close with 1002/1007/1009 and a reason.
/// </summary>
internal sealed class WebSocketConnection : Connection
{
    private readonly object _pongLock = new();
    private byte[]? _pong;
    private int _pongLength = -1;
    private volatile bool _pingPending;
    private volatile bool _upgraded;
    private WebSocketMessageReader? _reader;
    private ushort _closeCode;
    private string? _closeReason;

    public WebSocketConnection(Socket socket, Session session, TransportContext context)
        : base(socket, session, context)
    {
    }

    protected override async Task<bool> ReadLoopAsync()
    {
        var handshake = await HandshakeAsync().ConfigureAwait(false);
        if (handshake is not null)
        {
            return handshake.Value;
        }

        _reader = new WebSocketMessageReader(MaxMessageBytes);
        try
        {
            return await ReadFramesAsync().ConfigureAwait(false);
        }
        finally
        {
            _reader.Dispose();
        }
    }

    protected override FrameOutcome TryHandleNext(ref ReadOnlySequence<byte> buffer)
    {
        var status = _reader!.TryRead(ref buffer, out var message);
        if (status == WebSocketReadStatus.NeedMoreData)
        {
            return FrameOutcome.NeedMoreData;
        }

        return Handle(status, in message) ? FrameOutcome.Handled : FrameOutcome.Stop;
    }

    private bool Handle(WebSocketReadStatus status, in WebSocketMessage message)
    {
        switch (status)
        {
            case WebSocketReadStatus.Message:
                if (message.IsText)
                {
                    return CloseWith(WebSocketCloseCode.UnsupportedData, "text messages are not accepted: send each envelope as one binary message", SessionCloseKind.ProtocolError);
                }

                return Session.OnEnvelope(message.Payload);
            case WebSocketReadStatus.Ping:
                lock (_pongLock)
                {
                    _pong ??= new byte[WebSocketFrameWriter.MaxControlPayload];
                    message.Payload.Span.CopyTo(_pong);
                    _pongLength = message.Payload.Length; // only the latest ping needs an answer (RFC 6455 5.5.3)
                }

                Session.Outbox.Wake();
                return true;
            case WebSocketReadStatus.Pong:
                return true;
            case WebSocketReadStatus.Close:
                {
                    // Echo the peer's code (none → 1000) and finish the closing handshake.
                    ushort code = message.CloseCode == WebSocketCloseCode.NoStatusReceived ? WebSocketCloseCode.NormalClosure : message.CloseCode;
                    return CloseWith(code, "", SessionCloseKind.Normal);
                }

            default:
                return CloseWith(message.CloseCode, message.Error ?? "protocol error", SessionCloseKind.ProtocolError);
        }
    }

    private bool CloseWith(ushort code, string reason, SessionCloseKind kind)
    {
        if (Session.CloseReason is null)
        {
            _closeCode = code;
            _closeReason = reason;
        }

        Session.Close(kind, reason);
        return false;
    }

    /// <summary>Null when upgraded; otherwise the read loop's result (the connection ends).</summary>
    private async Task<bool?> HandshakeAsync()
    {
        while (true)
        {
            var result = await Input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                return false;
            }

            var buffer = result.Buffer;
            OnInput();
            var status = WebSocketHandshake.TryParse(ref buffer, Context.Options.MaxHandshakeBytes, out var request, out var failure);
            if (status == HandshakeStatus.NeedMoreData)
            {
                Input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    return true;
                }

                continue;
            }

            Input.AdvanceTo(buffer.Start);
            if (status == HandshakeStatus.Accepted && !string.Equals(request.Path, Context.Options.WebSocketPath, StringComparison.Ordinal))
            {
                status = HandshakeStatus.Rejected;
                failure = new HandshakeFailure(404, $"no WebSocket endpoint at '{request.Path}' (use '{Context.Options.WebSocketPath}')");
            }

            var response = new ArrayBufferWriter<byte>(256);
            if (status == HandshakeStatus.Rejected)
            {
                WebSocketHandshake.WriteReject(response, in failure);
                await SendAsync(response.WrittenMemory).ConfigureAwait(false);
                Session.Close(SessionCloseKind.ProtocolError, $"WebSocket handshake refused: {failure}");
                return false;
            }

            WebSocketHandshake.WriteAccept(response, request.Key);
            await SendAsync(response.WrittenMemory).ConfigureAwait(false);
            _upgraded = true;
            return null;
        }
    }

    protected override int HeaderSize(int bodyLength) => WebSocketFrameWriter.GetHeaderSize(bodyLength);

    protected override void WriteHeader(Span<byte> destination, int bodyLength) =>
        WebSocketFrameWriter.WriteHeader(destination, WebSocketOpcode.Binary, bodyLength);

    /// <summary>RFC 6455 ping: browsers and WebSocket libraries answer it without application code.</summary>
    protected override void SendKeepAlive()
    {
        _pingPending = true;
        Session.Outbox.Wake();
    }

    protected override int WritePending(Span<byte> destination)
    {
        int written = 0;
        if (_pingPending)
        {
            _pingPending = false;
            written = WebSocketFrameWriter.WriteHeader(destination, WebSocketOpcode.Ping, 0);
        }

        return written + WritePong(destination[written..]);
    }

    private int WritePong(Span<byte> destination)
    {
        if (Volatile.Read(ref _pongLength) < 0)
        {
            return 0;
        }

        lock (_pongLock)
        {
            int length = _pongLength;
            if (length < 0)
            {
                return 0;
            }

            int header = WebSocketFrameWriter.WriteHeader(destination, WebSocketOpcode.Pong, length);
            _pong.AsSpan(0, length).CopyTo(destination[header..]);
            _pongLength = -1;
            return header + length;
        }
    }

    protected override int WriteClosing(Span<byte> destination, SessionClose reason)
    {
        if (!_upgraded)
        {
            return 0;
        }

        ushort code = _closeCode != 0 ? _closeCode : reason.Kind switch
        {
            SessionCloseKind.Normal => WebSocketCloseCode.NormalClosure,
            SessionCloseKind.GoingAway => WebSocketCloseCode.GoingAway,
            SessionCloseKind.ProtocolError => WebSocketCloseCode.ProtocolError,
            SessionCloseKind.PolicyViolation => WebSocketCloseCode.PolicyViolation,
            SessionCloseKind.MessageTooBig => WebSocketCloseCode.MessageTooBig,
            SessionCloseKind.SlowConsumer => WebSocketCloseCode.PolicyViolation,
            _ => WebSocketCloseCode.InternalError,
        };
        string text = _closeReason ?? reason.Reason;
        var writer = new ArrayBufferWriter<byte>(WebSocketFrameWriter.MaxHeaderSize + WebSocketFrameWriter.MaxControlPayload);
        WebSocketFrameWriter.WriteClose(writer, code, Encoding.UTF8.GetBytes(text));
        writer.WrittenSpan.CopyTo(destination);
        return writer.WrittenCount;
    }
}
