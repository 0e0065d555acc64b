namespace FastRelay.LoadGen.Wire;

/// <summary>What kind of message a client received, across FastRelay and RESP.</summary>
internal enum InboundKind : byte
{
    /// <summary>A delivered pub/sub message (FastRelay EVENT, RESP "message" push).</summary>
    Event,
    /// <summary>FastRelay ACK (publish accepted, subscribe confirmed).</summary>
    Ack,
    /// <summary>FastRelay BACKOFF: the publish was not accepted.</summary>
    Backoff,
    /// <summary>FastRelay ERROR or RESP error reply.</summary>
    Error,
    /// <summary>FastRelay WELCOME.</summary>
    Welcome,
    /// <summary>RESP integer reply (PUBLISH: the number of receivers).</summary>
    Integer,
    /// <summary>RESP "subscribe" confirmation.</summary>
    Subscribed,
    /// <summary>FastRelay PONG or RESP +PONG.</summary>
    Pong,
    /// <summary>WebSocket close frame.</summary>
    Close,
    /// <summary>Anything else; ignored.</summary>
    Other,
}

/// <summary>One parsed message, without references into the receive buffer (nothing to keep alive).</summary>
internal struct Inbound
{
    public InboundKind Kind;

    /// <summary>FastRelay request_id the reply answers.</summary>
    public ulong RequestId;

    /// <summary>RESP integer, FastRelay seq on EVENT/ACK.</summary>
    public long Value;

    /// <summary>Stopwatch timestamp from the first 8 payload bytes of an event; 0 when the payload is shorter.</summary>
    public long SentTimestamp;

    /// <summary>FastRelay error code.</summary>
    public int ErrorCode;

    /// <summary>Error text (cold path only: allocates).</summary>
    public string? Text;
}

/// <summary>The peer sent bytes this client cannot parse.</summary>
internal sealed class WireException(string message) : Exception(message);
