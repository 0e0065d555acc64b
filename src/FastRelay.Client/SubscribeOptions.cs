namespace FastRelay.Client;

/// <summary>Per-subscription settings for <see cref="FastRelayClient.SubscribeAsync(string, SubscribeOptions, CancellationToken)"/>.</summary>
public sealed class SubscribeOptions
{
    internal static readonly SubscribeOptions Default = new();

    /// <summary>
    /// Presence info carried by the SUB (the server limits it, 1 KiB by default): shown in presence lists and join
    /// announcements, and sent again on every resubscribe. The first subscription of a topic on a client sets it.
    /// Not for patterns.
    /// </summary>
    public byte[]? PresenceInfo { get; init; }

    /// <summary>
    /// Resume from a position the application kept (e.g. <see cref="Subscription.Position"/> of an earlier run): the server
    /// replays what came after it (RECOVERED) or reports that it is gone (a <see cref="SubscriptionNotice"/>). Only for the
    /// first subscription of a topic on a client; not for patterns.
    /// </summary>
    public StreamPosition? ResumeFrom { get; init; }

    /// <summary>
    /// When a live event skips seqs (the server dropped droppable events for a slow consumer), ask the server for the
    /// missing range (UNSUB, then SUB from the last seq delivered). Off: report a <see cref="SubscriptionNoticeKind.Gap"/>
    /// notice and go on, as a stream of droppable events usually wants. Default on.
    /// </summary>
    public bool RepairGaps { get; init; } = true;
}
