using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>Per-publish metadata. A struct so that a publish with a fresh message id allocates nothing for its options.</summary>
public readonly record struct PublishOptions
{
    /// <summary>Idempotency key: the same (client id, message id) within the server's dedup window is ACKed as a duplicate.</summary>
    public string? MessageId { get; init; }

    /// <summary>Causal link to the event this one follows (carried end to end).</summary>
    public string? PrevEventId { get; init; }

    /// <summary>Delivery flags (droppable, partial, final, ...).</summary>
    public EventFlags Flags { get; init; }

    /// <summary>
    /// Ordering key (at most 256 UTF-8 bytes): a consumer group hands out events of one key one at a time, in order,
    /// each after the previous one was acknowledged. Plain subscribers see it on <see cref="RelayEvent.Key"/>.
    /// </summary>
    public string? Key { get; init; }
}
