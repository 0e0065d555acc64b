namespace FastRelay.Protocol;

/// <summary>Delivery and stream flags (field 9). Events are critical unless marked droppable.</summary>
[Flags]
public enum EventFlags : uint
{
    None = 0,
    /// <summary>May be dropped for a slow consumer (the seq gap tells the client).</summary>
    Droppable = 1 << 0,
    /// <summary>A partial output of a stream (e.g. AI tokens); coalescible with the next partial.</summary>
    Partial = 1 << 1,
    /// <summary>The final output of a stream.</summary>
    Final = 1 << 2,
    /// <summary>On ACK: the publish was a duplicate; the seq is the original one.</summary>
    Duplicate = 1 << 3,
    /// <summary>The output is degraded (fallback or timeout).</summary>
    Degraded = 1 << 4,
    /// <summary>On PRESENCE: a client joined the topic.</summary>
    Join = 1 << 5,
    /// <summary>On PRESENCE: a client left the topic (unsubscribed or disconnected).</summary>
    Leave = 1 << 6,
    /// <summary>
    /// On a partial EVENT: several consecutive partials of the topic were merged for a slow consumer; the payload is
    /// their concatenation and the event stands for every seq after the previous one delivered on this topic.
    /// </summary>
    Coalesced = 1 << 7,
    /// <summary>On KV_SET: only set when the key does not exist.</summary>
    IfAbsent = 1 << 8,
    /// <summary>On a PUB's ACK: nobody received the event and no history keeps it (no subscriber, group or retention).</summary>
    NoRecipients = 1 << 9,
    /// <summary>
    /// On GROUP_ACK: not done yet, still working on it. The member keeps the event and its lease starts again (the
    /// event is not redelivered while the member keeps reporting progress); the ACK reply is sent as usual.
    /// </summary>
    InProgress = 1 << 10,
}
