namespace FastRelay.Client;

/// <summary>Why a subscription skipped events it cannot get back.</summary>
public enum SubscriptionNoticeKind
{
    /// <summary>The server answered a resume (after a reconnect, a gap or <see cref="SubscribeOptions.ResumeFrom"/>) with NOT_RECOVERED: the history is gone (retention moved past it, or the epoch changed).</summary>
    NotRecovered,

    /// <summary>A live event came in a new epoch: the topic was forgotten and recreated (only patterns can see this on a live connection).</summary>
    EpochChanged,

    /// <summary>A live event skipped seqs and the gap could not be repaired (pattern subscriptions, or <see cref="SubscribeOptions.RepairGaps"/> off).</summary>
    Gap,
}

/// <summary>
/// The events of <see cref="Topic"/> after <see cref="Expected"/> up to and including <see cref="Current"/> will never
/// reach the subscription; it goes on with the events after <see cref="Current"/>. The application must resynchronise
/// whatever state those events would have changed another way.
/// </summary>
/// <param name="Topic">The concrete topic (for a pattern subscription, the topic that skipped).</param>
/// <param name="Kind">What happened.</param>
/// <param name="Expected">The last position delivered into the subscription: the stream was expected to go on from here.</param>
/// <param name="Current">Where the stream goes on from: the next event delivered follows it.</param>
public sealed record SubscriptionNotice(string Topic, SubscriptionNoticeKind Kind, StreamPosition Expected, StreamPosition Current);
