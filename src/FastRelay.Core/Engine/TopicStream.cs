using FastRelay.Core.Sessions;

namespace FastRelay.Core.Engine;

/// <summary>
/// One topic's state on its owner shard: epoch, last seq and subscribers. Touched only by that shard's thread.
/// </summary>
internal sealed class TopicStream
{
    /// <summary>Position in the shard's list of topics holding retained events (-1: not in it). Shard thread only.</summary>
    internal int RetainingIndex = -1;

    private Session[] _subscribers = [];
    private byte[]?[] _infos = [];
    private int _count;

    public TopicStream(TopicKey key, ulong epoch, TopicHistory retention, bool announcesPresence)
    {
        Key = key;
        Epoch = epoch;
        Retention = retention;
        AnnouncesPresence = announcesPresence;
    }

    /// <summary>Consumer groups on this topic (null until the first one).</summary>
    public List<ConsumerGroup>? Groups { get; set; }

    /// <summary>Subscribers receive PRESENCE join/leave frames.</summary>
    public bool AnnouncesPresence { get; }

    /// <summary>Presence info a subscriber attached to its SUB (index matches <see cref="Subscribers"/>).</summary>
    public ReadOnlySpan<byte[]?> Infos => new(_infos, 0, _count);

    /// <summary>Recent events for replay (bounded by count and age).</summary>
    public TopicHistory Retention { get; }

    public TopicKey Key { get; }

    /// <summary>Changes when the topic's history is lost (new stream instance); opaque to clients.</summary>
    public ulong Epoch { get; }

    /// <summary>Seq of the last event (0 before the first). Events are numbered 1, 2, 3, ... without gaps.</summary>
    public ulong Seq { get; private set; }

    public int SubscriberCount => _count;

    public ReadOnlySpan<Session> Subscribers => new(_subscribers, 0, _count);

    /// <summary>Sessions reached through wildcard subscriptions (not also direct subscribers), each once.</summary>
    public Session[] PatternRecipients { get; private set; } = [];

    /// <summary>The shard's pattern version <see cref="PatternRecipients"/> was computed for; -1 = stale.</summary>
    public int PatternVersion { get; set; } = -1;

    /// <summary>Pattern groups this topic's events are forwarded to, as of <see cref="PatternGroupVersion"/>.</summary>
    public PatternGroup[] PatternGroups { get; private set; } = [];

    /// <summary>The engine's pattern group version <see cref="PatternGroups"/> was computed for; -1 = not yet.</summary>
    public int PatternGroupVersion { get; private set; } = -1;

    public void SetPatternGroups(PatternGroup[] groups, int version)
    {
        PatternGroups = groups;
        PatternGroupVersion = version;
    }

    public void SetPatternRecipients(Session[] recipients, int version)
    {
        PatternRecipients = recipients;
        PatternVersion = version;
    }

    public bool HasSubscriber(Session session)
    {
        for (int i = 0; i < _count; i++)
        {
            if (ReferenceEquals(_subscribers[i], session))
            {
                return true;
            }
        }

        return false;
    }

    public ulong Next() => ++Seq;

    /// <summary>
    /// Whether a subscriber other than <paramref name="except"/> has the same client id (and, when
    /// <paramref name="sameInfo"/> is set, the same presence info). Presence is per client id, not per connection:
    /// a client reconnecting under its id may subscribe before its old connection's teardown reaches the shard.
    /// Linear, and only called for topics that announce presence, where each change is a broadcast to every
    /// subscriber anyway.
    /// </summary>
    public bool HasOtherSessionOf(Session except, byte[] clientId, bool sameInfo = false, byte[]? info = null) =>
        IndexOfOtherSessionOf(except, clientId, sameInfo, info) >= 0;

    /// <summary>Index (in <see cref="Subscribers"/> and <see cref="Infos"/>) of such a subscriber, or -1.</summary>
    public int IndexOfOtherSessionOf(Session except, byte[] clientId, bool sameInfo = false, byte[]? info = null)
    {
        for (int i = 0; i < _count; i++)
        {
            var other = _subscribers[i];
            if (!ReferenceEquals(other, except)
                && other.ClientIdUtf8.AsSpan().SequenceEqual(clientId)
                && (!sameInfo || _infos[i].AsSpan().SequenceEqual(info)))
            {
                return i;
            }
        }

        return -1;
    }

    public bool AddSubscriber(Session session, byte[]? info = null)
    {
        for (int i = 0; i < _count; i++)
        {
            if (ReferenceEquals(_subscribers[i], session))
            {
                return false;
            }
        }

        if (_count == _subscribers.Length)
        {
            Array.Resize(ref _subscribers, Math.Max(4, _count * 2));
            Array.Resize(ref _infos, _subscribers.Length);
        }

        _infos[_count] = info;
        _subscribers[_count++] = session;
        PatternVersion = -1;
        return true;
    }

    public bool RemoveSubscriber(Session session) => RemoveSubscriber(session, out _);

    public bool RemoveSubscriber(Session session, out byte[]? info)
    {
        info = null;
        for (int i = 0; i < _count; i++)
        {
            if (ReferenceEquals(_subscribers[i], session))
            {
                // Swap-remove: delivery order across subscribers is not part of any guarantee.
                info = _infos[i];
                _subscribers[i] = _subscribers[--_count];
                _infos[i] = _infos[_count];
                _subscribers[_count] = null!;
                _infos[_count] = null;
                PatternVersion = -1;
                return true;
            }
        }

        return false;
    }
}
