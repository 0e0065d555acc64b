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

    /// <summary>
    /// Join the consumer group of this name instead of subscribing: each event of the topic goes to one member of the group
    /// (members in turn, across clients); acknowledge each with <see cref="Subscription.AckAsync"/>. On a pattern
    /// (<c>jobs.*</c>) the group takes the events of every matching topic in the tenant, each to one member, and
    /// <see cref="Credits"/> bounds what the member holds across all of them; a pattern group and a topic group of the same
    /// name are different groups. Events of a group subscription may be redelivered and reordered (no gap detection, no
    /// resume position: after a reconnect it rejoins plainly, and what the old connection held goes to the other members).
    /// A topic or pattern cannot have both a group subscription and any other subscription (plain, or a second group) in
    /// one client: that is refused with <see cref="ArgumentException"/>; the server refuses (409) a second group of the
    /// same name whose topics overlap. Not with <see cref="ResumeFrom"/> or <see cref="PresenceInfo"/>. Other
    /// subscriptions of the same client that match a group's topics (a pattern over a group topic, a topic or pattern
    /// under a pattern group) are not supported: the client cannot tell their copies of an event apart.
    /// </summary>
    public string? Group { get; init; }

    /// <summary>
    /// With <see cref="Group"/>: how many unacknowledged events this member may hold (the server caps it, 1,024 by
    /// default); null for the server's default (16).
    /// </summary>
    public int? Credits { get; init; }
}
