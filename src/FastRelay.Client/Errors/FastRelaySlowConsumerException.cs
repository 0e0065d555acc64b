using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A subscription's buffer was full when a critical (non-droppable) event arrived, so the subscription was ended
/// rather than blocking the connection or losing the event silently. Resume from <see cref="LastDeliveredSeq"/>.
/// </summary>
public sealed class FastRelaySlowConsumerException : FastRelayException
{
    public FastRelaySlowConsumerException(string topic, int capacity, ulong lastDeliveredSeq)
        : base(ErrorCode.None, $"subscription to '{topic}' ended: its consumer fell {capacity} events behind (last buffered seq {lastDeliveredSeq})")
    {
        Topic = topic;
        LastDeliveredSeq = lastDeliveredSeq;
    }

    public string Topic { get; }

    /// <summary>The seq of the last event that was buffered for the consumer (0 if none).</summary>
    public ulong LastDeliveredSeq { get; }
}
