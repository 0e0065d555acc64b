namespace FastRelay.Transport.WebSockets;

/// <summary>One result of <see cref="WebSocketMessageReader.TryRead"/>: a data message, a control frame or a protocol error.</summary>
/// <remarks>
/// <see cref="Payload"/> points into the reader's buffers: it is valid until the next
/// <see cref="WebSocketMessageReader.TryRead"/> or <see cref="WebSocketMessageReader.Dispose"/>.
/// </remarks>
public readonly struct WebSocketMessage
{
    private WebSocketMessage(WebSocketOpcode opcode, ReadOnlyMemory<byte> payload, ushort closeCode, string? error)
    {
        Opcode = opcode;
        Payload = payload;
        CloseCode = closeCode;
        Error = error;
    }

    /// <summary>Text or Binary for a message; Ping, Pong or Close for a control frame; Close for a protocol error.</summary>
    public WebSocketOpcode Opcode { get; }

    /// <summary>The unmasked payload; for a close frame, the whole body (code and reason).</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>
    /// For a received close: its code, or <see cref="WebSocketCloseCode.NoStatusReceived"/> when it had no body.
    /// For a protocol error: the code to send in our close frame (1002, 1007 or 1009).
    /// </summary>
    public ushort CloseCode { get; }

    /// <summary>For a received close: the UTF-8 reason (possibly empty), a slice of <see cref="Payload"/>.</summary>
    public ReadOnlyMemory<byte> CloseReason => Opcode == WebSocketOpcode.Close && Payload.Length > 2 ? Payload[2..] : default;

    /// <summary>For a protocol error: why, as a constant string short enough for a close frame; otherwise null.</summary>
    public string? Error { get; }

    /// <summary>Whether this is a text message (UTF-8 already validated).</summary>
    public bool IsText => Opcode == WebSocketOpcode.Text;

    internal static WebSocketMessage Data(WebSocketOpcode opcode, ReadOnlyMemory<byte> payload) => new(opcode, payload, 0, null);

    internal static WebSocketMessage Control(WebSocketOpcode opcode, ReadOnlyMemory<byte> payload, ushort closeCode = 0) =>
        new(opcode, payload, closeCode, null);

    internal static WebSocketMessage Failure(ushort closeCode, string error) =>
        new(WebSocketOpcode.Close, default, closeCode, error);
}
