using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Targets;

namespace FastRelay.LoadGen.Wire;

/// <summary>
/// How the simulated clients talk to one target: connection setup, the bytes of SUBSCRIBE and PUBLISH,
/// and an in-place parser for what comes back. Implementations hold no per-connection state.
/// </summary>
internal abstract class WireProtocol
{
    public abstract TargetKind Kind { get; }

    /// <summary>True when the publish reply carries the number of receivers (RESP); false when it only accepts (FastRelay ACK).</summary>
    public abstract bool PublishReplyCountsReceivers { get; }

    /// <summary>Upper bound of the bytes one publish takes on the wire, framing included.</summary>
    public abstract int MaxPublishBytes(int topicBytes, int payloadBytes);

    /// <summary>Makes a freshly connected socket usable (WebSocket upgrade, HELLO → WELCOME, PING → PONG).</summary>
    public abstract Task OpenAsync(ClientConnection connection, int clientIndex, CancellationToken cancellationToken);

    public abstract int WriteSubscribe(Span<byte> destination, ReadOnlyMemory<byte> topic, ulong requestId);

    /// <summary>Writes one publish; <paramref name="requestId"/> lets FastRelay match the ACK (RESP replies are in order).</summary>
    /// <paramref name="flags"/> (FastRelay field 9: droppable, partial) is ignored by targets without them (RESP).
    public abstract int WritePublish(Span<byte> destination, ReadOnlyMemory<byte> topic, ReadOnlyMemory<byte> payload, ulong requestId, FastRelay.Protocol.EventFlags flags = 0);

    /// <summary>True when <paramref name="message"/> confirms the subscribe sent with <paramref name="requestId"/>.</summary>
    public abstract bool IsSubscribed(in Inbound message, ulong requestId);

    /// <summary>
    /// Parses one message from <c>buffer[offset..offset+count]</c> in place. False when more bytes are needed;
    /// throws <see cref="WireException"/> on bytes that cannot be parsed.
    /// </summary>
    public abstract bool TryRead(byte[] buffer, int offset, int count, out int consumed, out Inbound message);

    public static WireProtocol For(TargetProcess target) => target.Kind switch
    {
        TargetKind.FastRelayWebSocket => new FastRelayWebSocketWire(target.EndPoint),
        TargetKind.FastRelayTcp => new FastRelayTcpWire(),
        _ => new RespWire(),
    };
}
