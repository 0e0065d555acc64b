namespace FastRelay.Transport.WebSockets;

/// <summary>What <see cref="WebSocketHandshake.TryParse"/> made of the bytes so far.</summary>
public enum HandshakeStatus : byte
{
    /// <summary>The request is not complete yet and is still under the size limit.</summary>
    NeedMoreData,

    /// <summary>A valid upgrade request was read; answer with <see cref="WebSocketHandshake.WriteAccept"/>.</summary>
    Accepted,

    /// <summary>The request is invalid; answer with <see cref="WebSocketHandshake.WriteReject"/> and close.</summary>
    Rejected,
}
