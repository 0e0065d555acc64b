using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>What the receive loop does with one event.</summary>
internal enum RouteDecision : byte
{
    Deliver,
    /// <summary>A duplicate, or an event that a resume in flight will deliver again.</summary>
    Drop,
    /// <summary>The seq skipped: drop it and ask the server for the missing range.</summary>
    Repair,
}

/// <summary>
/// One concrete topic as this client receives it: the subscriptions it feeds (to the topic itself, and patterns that
/// match it), and the last position delivered, which drops duplicates, exposes gaps and is where a resume starts.
/// </summary>
/// <remarks>
/// The position and <see cref="Resuming"/> belong to the receive loop (and to the reconnect procedure, which runs while no
/// receive loop does). The subscription arrays are immutable and swapped under the table lock.
/// </remarks>
internal sealed class TopicRoute(string topic)
{
    public string Topic { get; } = topic;

    /// <summary>Subscriptions to exactly this topic; when there are any, the server has this topic subscribed on <see cref="Connection"/>.</summary>
    public Subscription[] Exact { get; set; } = [];

    /// <summary>Pattern subscriptions that match this topic, as of <see cref="PatternVersion"/>.</summary>
    public Subscription[] ViaPatterns
    {
        get;
        set
        {
            field = value;
            ViaGroupsOnly = value.Length > 0 && Array.TrueForAll(value, static s => s.Group is not null);
        }
    } = [];

    /// <summary>Every pattern subscription that matches is a pattern group's: the topic's events come to it in part.</summary>
    private bool ViaGroupsOnly { get; set; }

    public int PatternVersion { get; set; } = -1;

    /// <summary>The connection the topic's SUB went out on: UNSUB and gap repairs go there, and only while it is open.</summary>
    public ClientConnection? Connection { get; set; }

    /// <summary>Presence info of the topic's first subscription, sent again with every resubscribe.</summary>
    public byte[]? PresenceInfo { get; set; }

    /// <summary>The consumer group its one subscription joined (null for a plain topic subscription).</summary>
    public string? Group { get; set; }

    /// <summary>The group member's credits (null: the server's default), sent again when it rejoins.</summary>
    public int? Credits { get; set; }

    /// <summary>Some subscription of the topic wants live gaps repaired.</summary>
    public bool RepairGaps { get; set; }

    public bool HasPosition { get; private set; }

    public ulong Epoch { get; private set; }

    public ulong LastSeq { get; private set; }

    public StreamPosition Position => new(Epoch, LastSeq);

    /// <summary>A resuming SUB is in flight: events are dropped until its reply (the replay after RECOVERED brings them).</summary>
    public bool Resuming { get; set; }

    public void MoveTo(StreamPosition position)
    {
        HasPosition = true;
        Epoch = position.Epoch;
        LastSeq = position.Seq;
    }

    /// <summary>Decides about an event of this topic and advances the position past it when it is delivered.</summary>
    /// <param name="flags">A <see cref="EventFlags.Coalesced"/> event stands for every seq since the previous one: no gap.</param>
    /// <param name="notice">Set when the event is delivered after events that will never come (a gap or a new epoch).</param>
    public RouteDecision Admit(ulong epoch, ulong seq, EventFlags flags, out SubscriptionNotice? notice)
    {
        notice = null;
        if (Group is not null || (Exact.Length == 0 && ViaGroupsOnly))
        {
            // A group member gets some of the topic's events, possibly redelivered and reordered: no position to keep.
            return RouteDecision.Deliver;
        }

        if (!HasPosition)
        {
            MoveTo(new StreamPosition(epoch, seq)); // first event of a topic seen through a pattern
            return RouteDecision.Deliver;
        }

        if (Resuming)
        {
            return RouteDecision.Drop;
        }

        if (epoch == Epoch)
        {
            if (seq <= LastSeq)
            {
                return RouteDecision.Drop;
            }

            if (seq != LastSeq + 1 && (flags & EventFlags.Coalesced) == 0)
            {
                if (Exact.Length > 0 && RepairGaps)
                {
                    return RouteDecision.Repair;
                }

                return AcceptGap(epoch, seq, out notice);
            }

            LastSeq = seq;
            return RouteDecision.Deliver;
        }

        notice = new SubscriptionNotice(Topic, SubscriptionNoticeKind.EpochChanged, Position, new StreamPosition(epoch, seq - 1));
        MoveTo(new StreamPosition(epoch, seq));
        return RouteDecision.Deliver;
    }

    /// <summary>Delivers an event that skipped seqs as it is, with a notice for what was skipped.</summary>
    public RouteDecision AcceptGap(ulong epoch, ulong seq, out SubscriptionNotice notice)
    {
        notice = new SubscriptionNotice(Topic, SubscriptionNoticeKind.Gap, Position, new StreamPosition(epoch, seq - 1));
        MoveTo(new StreamPosition(epoch, seq));
        return RouteDecision.Deliver;
    }

    /// <summary>The server could not replay from the position asked for: go on from its current one.</summary>
    public SubscriptionNotice NotRecovered(StreamPosition current)
    {
        var notice = new SubscriptionNotice(Topic, SubscriptionNoticeKind.NotRecovered, Position, current);
        MoveTo(current);
        Resuming = false;
        return notice;
    }

    /// <summary>Every subscription this topic's events go to.</summary>
    public IEnumerable<Subscription> All => ViaPatterns.Length == 0 ? Exact : Exact.Concat(ViaPatterns);

    public void Deliver(RelayEvent relayEvent)
    {
        foreach (var subscription in Exact)
        {
            subscription.Deliver(relayEvent);
        }

        foreach (var subscription in ViaPatterns)
        {
            subscription.Deliver(relayEvent);
        }
    }
}
