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
    // The latest ping's payload, created by the first ping (most connections never send one); it is also the
    // lock between the read loop that fills it and the sender that answers it.
    private byte[]? _pong;
    private int _pongLength = -1;
    private volatile bool _pingPending;
    private volatile bool _upgraded;
    private WebSocketMessageReader? _reader;

    // Handshake: the answer being sent, and what it said.
    private byte[]? _response; // pooled
    private int _responseLength;
    private bool _accepted;
    private HandshakeFailure _refusal;
    private ushort _closeCode;
    private string? _closeReason;

    public WebSocketConnection(Socket socket, Session session, TransportContext context)
        : base(socket, session, context)
    {
    }

    // Handshake bytes may be followed by pipelined frames in the same read; the parser bounds the handshake itself.
    protected override int MaxBufferedBytes => Context.Options.MaxHandshakeBytes + InitialReceiveBytes;

    protected override void OnReadEnded()
    {
        _reader?.Dispose();
        if (_response is { } response)
        {
            _response = null; // the peer went away before the answer was out
            ArrayPool<byte>.Shared.Return(response);
        }
    }

    protected override FrameOutcome TryHandleNext(ref ReadOnlySequence<byte> buffer)
    {
        if (_reader is null)
        {
            return TryHandshake(ref buffer);
        }

        var status = _reader.TryRead(ref buffer, out var message);
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
                {
                    var pong = _pong ??= new byte[WebSocketFrameWriter.MaxControlPayload]; // only this thread sets it
                    lock (pong)
                    {
                        message.Payload.Span.CopyTo(pong);
                        _pongLength = message.Payload.Length; // only the latest ping needs an answer (RFC 6455 5.5.3)
                    }
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

    /// <summary>
    /// Before the upgrade: parses the HTTP request and prepares the answer (101, or a refusal), which the read loop
    /// sends before it hands on anything that followed the request. After a refusal the session closes.
    /// </summary>
    private FrameOutcome TryHandshake(ref ReadOnlySequence<byte> buffer)
    {
        if (_response is not null)
        {
            // The answer has gone out.
            ArrayPool<byte>.Shared.Return(_response);
            _response = null;
            if (!_accepted)
            {
                Session.Close(SessionCloseKind.ProtocolError, $"WebSocket handshake refused: {_refusal}");
                return FrameOutcome.Stop;
            }

            _upgraded = true;
            _reader = new WebSocketMessageReader(MaxMessageBytes);
            return FrameOutcome.Handled;
        }

        var status = WebSocketHandshake.TryParse(ref buffer, Context.Options.MaxHandshakeBytes, out var request, out var failure);
        if (status == HandshakeStatus.NeedMoreData)
        {
            return FrameOutcome.NeedMoreData;
        }

        if (status == HandshakeStatus.Accepted && !string.Equals(request.Path, Context.Options.WebSocketPath, StringComparison.Ordinal))
        {
            status = HandshakeStatus.Rejected;
            failure = new HandshakeFailure(404, $"no WebSocket endpoint at '{request.Path}' (use '{Context.Options.WebSocketPath}')");
        }

        if (status == HandshakeStatus.Rejected)
        {
            var refusal = new ArrayBufferWriter<byte>(256); // cold: a refused upgrade
            WebSocketHandshake.WriteReject(refusal, in failure);
            _response = ArrayPool<byte>.Shared.Rent(refusal.WrittenCount);
            refusal.WrittenSpan.CopyTo(_response);
            _responseLength = refusal.WrittenCount;
            _refusal = failure;
        }
        else
        {
            // Into a pooled buffer: a connect should leave as little garbage as it can.
            _response = ArrayPool<byte>.Shared.Rent(256);
            _responseLength = WebSocketHandshake.WriteAccept(_response, request.Key);
            _accepted = true;
        }

        return FrameOutcome.Respond;
    }

    protected override ReadOnlyMemory<byte> TakeResponse() => _response.AsMemory(0, _responseLength);

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

        var pong = Volatile.Read(ref _pong)!; // set before any length was
        lock (pong)
        {
            int length = _pongLength;
            if (length < 0)
            {
                return 0;
            }

            int header = WebSocketFrameWriter.WriteHeader(destination, WebSocketOpcode.Pong, length);
            pong.AsSpan(0, length).CopyTo(destination[header..]);
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
