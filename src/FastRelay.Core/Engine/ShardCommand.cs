using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

internal enum ShardCommandKind : byte
{
    None,
    /// <summary>Frame = the EVENT template; stamp, fan out, ACK if RequestId != 0.</summary>
    Publish,
    Subscribe,
    /// <summary>RequestId 0 = silent (connection gone).</summary>
    Unsubscribe,
    /// <summary>Runs Action on the shard thread (cold paths, tests).</summary>
    Invoke,
    /// <summary>Pattern = a wildcard subscription to index on this shard.</summary>
    SubscribePattern,
    /// <summary>Pattern = a wildcard subscription to drop; RequestId 0 = silent.</summary>
    UnsubscribePattern,
    /// <summary>Reply with the topic's presence list.</summary>
    PresenceQuery,
    /// <summary>Frame carries [key][value]; KeyLength splits them.</summary>
    KvGet,
    KvSet,
    KvDelete,
    /// <summary>Topic + GroupName + Credits: the session joins the topic's consumer group (or PatternGroup, on its home).</summary>
    GroupJoin,
    /// <summary>Topic + GroupName (or PatternGroup); RequestId 0 = silent (connection gone).</summary>
    GroupLeave,
    /// <summary>Topic + GroupName + AckSeq (or PatternGroup + Topic + AckSeq): the member is done with that event.</summary>
    GroupAck,
    /// <summary>PatternGroup: events were forwarded to it; drain its inbound ring (home shard).</summary>
    PatternGroupWake,
}

/// <summary>One hand-off from a connection to a shard, carried by value through the inbox ring.</summary>
internal struct ShardCommand
{
    public ShardCommandKind Kind;
    public Session Session;
    public Frame? Frame;
    public TopicKey? Topic;
    public ulong Hash;
    public ulong RequestId;
    public Action? Action;
    public PatternSubscription? Pattern;
    /// <summary>Group commands on a pattern group (sent to its home shard).</summary>
    public PatternGroup? PatternGroup;
    /// <summary>Publish: the tenant namespace (Session may be null for server-originated events).</summary>
    public int Tenant;
    /// <summary>Subscribe: presence info supplied by the client.</summary>
    public byte[]? Info;
    /// <summary>KV: bytes of the key at the start of Frame (the value follows).</summary>
    public int KeyLength;
    public uint TtlMs;
    public ulong ExpectedVersion;
    public bool HasExpectedVersion;
    public bool IfAbsent;

    /// <summary>GROUP_ACK with the in-progress flag: extend the event's lease instead of finishing it.</summary>
    public bool InProgress;
    public string? GroupName;
    public int Credits;
    public ulong AckSeq;
    /// <summary>Publish: 128-bit hash of (tenant, topic, client_id, message_id) when message_id was given.</summary>
    public UInt128 DedupKey;
    public bool HasDedupKey;
    /// <summary>Subscribe: resume after (SinceEpoch, SinceSeq).</summary>
    public bool Resume;
    public ulong SinceEpoch;
    public ulong SinceSeq;
}
