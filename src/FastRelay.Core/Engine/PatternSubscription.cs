using FastRelay.Core.Sessions;
using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Engine;

/// <summary>
/// One wildcard subscription ("agents.*.tasks", "doc.&gt;"). Indexed on every shard, since matching topics may live
/// on any of them; the last shard to register (or drop) it sends the reply.
/// </summary>
internal sealed class PatternSubscription
{
    private int _pendingSubscribe;
    private int _pendingUnsubscribe;

    public PatternSubscription(Session session, int tenant, TopicPattern pattern)
    {
        Session = session;
        Tenant = tenant;
        Pattern = pattern;
    }

    public Session Session { get; }

    public int Tenant { get; }

    public TopicPattern Pattern { get; }

    /// <summary>Starts the subscribe or the unsubscribe broadcast to <paramref name="shards"/> shards (each happens once).</summary>
    public void BeginBroadcast(bool subscribe, int shards) => Volatile.Write(ref subscribe ? ref _pendingSubscribe : ref _pendingUnsubscribe, shards);

    /// <summary>True for the shard that completes the broadcast.</summary>
    public bool ShardDone(bool subscribe) => Interlocked.Decrement(ref subscribe ? ref _pendingSubscribe : ref _pendingUnsubscribe) == 0;

    public bool Matches(TopicKey topic) => topic.Tenant == Tenant && Pattern.Matches(topic.Utf8);
}
