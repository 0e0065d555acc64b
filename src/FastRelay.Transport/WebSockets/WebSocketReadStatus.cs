namespace FastRelay.Transport.WebSockets;

/// <summary>What <see cref="WebSocketMessageReader.TryRead"/> produced.</summary>
public enum WebSocketReadStatus : byte
{
    /// <summary>Every byte given was consumed (or is a partial header left in the buffer); read more input.</summary>
    NeedMoreData,

    /// <summary>A complete text or binary message, fragments reassembled.</summary>
    Message,

    /// <summary>A ping; answer with a pong carrying the same payload.</summary>
    Ping,

    /// <summary>An unsolicited or answering pong.</summary>
    Pong,

    /// <summary>The client started the closing handshake; echo a close and end the connection. Terminal.</summary>
    Close,

    /// <summary>The client broke the protocol; send a close with the given code and end the connection. Terminal.</summary>
    ProtocolError,
}
