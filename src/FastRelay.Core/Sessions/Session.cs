using System.Runtime.CompilerServices;
using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Core.FlowControl;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core.Sessions;

/// <summary>Where a session is in its life.</summary>
public enum SessionState : byte
{
    AwaitingHello,
    Open,
    Closed,
}

/// <summary>
/// One client connection as the engine sees it: the protocol state machine (HELLO, SUB, PUB, ...), its tenant and
/// permissions, its subscriptions and its <see cref="Outbox"/>. The transport feeds it whole envelopes from its
/// read loop (<see cref="OnEnvelope"/>) and drains its outbox; nothing here touches a socket.
/// </summary>
public sealed class Session
{
    private static long s_nextId;
    private static readonly byte[] s_inboxFull = "shard inbox full"u8.ToArray();
    private static readonly byte[] s_connectionRate = "publish rate limit of this connection"u8.ToArray();
    private static readonly byte[] s_tenantRate = "publish rate limit of this tenant"u8.ToArray();

    private readonly RelayEngine _engine;
    // Created by the first SUB, like the other subscription maps: an idle connection holds none.
    private Dictionary<string, TopicKey>? _subscriptions;
    private Dictionary<string, PatternSubscription>? _patternSubscriptions;
    private Dictionary<(string Topic, string Group), TopicKey>? _groups;
    private Dictionary<(string Pattern, string Group), PatternGroup>? _patternGroups;
    private SessionClose? _close;
    private int _state; // a SessionState; AwaitingHello → Open by CAS, so a HELLO racing a close needs no lock

    internal Session(RelayEngine engine, string remoteEndPoint, string transport)
    {
        _engine = engine;
        Id = Interlocked.Increment(ref s_nextId);
        RemoteEndPoint = remoteEndPoint;
        Transport = transport;
        Outbox = new Outbox(engine.OutboxLimits, engine.Frames);
        var limits = engine.Options.Limits;
        _publishBucket = new TokenBucket(limits.PublishRatePerConnection, LimitOptions.BurstOr(limits.PublishBurstPerConnection, limits.PublishRatePerConnection));
    }

    public long Id { get; }

    public string RemoteEndPoint { get; }

    /// <summary>"ws", "tcp" or "unix".</summary>
    public string Transport { get; }

    public SessionState State => (SessionState)Volatile.Read(ref _state);

    public TenantContext? Tenant { get; private set; }

    public string? ClientId { get; private set; }

    public Outbox Outbox { get; }

    /// <summary>Set once when the session starts closing.</summary>
    public SessionClose? CloseReason => Volatile.Read(ref _close);

    public int SubscriptionCount => (_subscriptions?.Count ?? 0) + (_patternSubscriptions?.Count ?? 0) + (_groups?.Count ?? 0) + (_patternGroups?.Count ?? 0);

    private byte[] _clientIdUtf8 = [];
    private TokenBucket _publishBucket;
    private int _drainRequested; // set once by Drain: PUB/SUB get 503 from then on
    private int _welcomed;
    private int _drainSent;
    private string? _drainNode;
    private uint _drainRetryAfterMs;
    private bool _helloCompleted;
    private bool _countedInTenant;

    internal byte[] ClientIdUtf8 => _clientIdUtf8;
    private TopicPatternSet? _publishAllowed;
    private TopicPatternSet? _subscribeAllowed;

    /// <summary>
    /// Handles one envelope from the client (read-loop thread). Returns false when the session is closing;
    /// the transport then flushes the outbox and closes the connection.
    /// </summary>
    public bool OnEnvelope(ReadOnlyMemory<byte> bytes)
    {
        if (State == SessionState.Closed)
        {
            return false;
        }

        var error = EnvelopeCodec.TryDecode(bytes, out var envelope, out var field);
        if (error != DecodeError.None)
        {
            Fail(0, ErrorCode.BadFrame, DecodeErrors.Describe(error, field), SessionCloseKind.ProtocolError);
            return false;
        }

        if (State == SessionState.AwaitingHello)
        {
            if (envelope.Type != FrameType.Hello)
            {
                Fail(envelope.RequestId, ErrorCode.Unauthorized, "HELLO must be the first frame", SessionCloseKind.PolicyViolation);
                return false;
            }

            return OnHello(in envelope);
        }

        if (Volatile.Read(ref _drainRequested) != 0 && envelope.Type is FrameType.Pub or FrameType.Sub)
        {
            // Not accepted: safe to retry elsewhere (same message_id). The hint repeats the DRAIN's delay for
            // clients that missed the DRAIN frame.
            var refusal = new Envelope(FrameType.Error)
                .WithError(ErrorCode.Unavailable, "server draining: reconnect and retry (the publish was not accepted)")
                .WithRetryAfterMs(_drainRetryAfterMs);
            if (envelope.RequestId != 0)
            {
                refusal = refusal.WithRequestId(envelope.RequestId);
            }

            _engine.CountError();
            SendControl(in refusal);
            return true;
        }

        switch (envelope.Type)
        {
            case FrameType.Pub:
                if (bytes.Length > Tenant!.MaxMessageBytes)
                {
                    SendError(envelope.RequestId, ErrorCode.TooLarge, $"message of {bytes.Length} bytes exceeds the tenant's limit of {Tenant.MaxMessageBytes} bytes");
                    break;
                }

                OnPublish(in envelope);
                break;
            case FrameType.Sub:
                OnSubscribe(in envelope);
                break;
            case FrameType.Unsub:
                OnUnsubscribe(in envelope);
                break;
            case FrameType.Presence:
                OnPresenceQuery(in envelope);
                break;
            case FrameType.GroupAck:
                OnGroupAck(in envelope);
                break;
            case FrameType.KvGet:
            case FrameType.KvSet:
            case FrameType.KvDelete:
                OnKv(in envelope);
                break;
            case FrameType.Ping:
                SendControl(new Envelope(FrameType.Pong) { RequestId = envelope.RequestId, Payload = envelope.Payload, Present = FieldMask.Type | (envelope.Present & (FieldMask.RequestId | FieldMask.Payload)) });
                break;
            case FrameType.Pong:
                break;
            case FrameType.Hello:
                SendError(envelope.RequestId, ErrorCode.UnsupportedType, "HELLO was already received on this connection");
                break;
            default:
                SendError(envelope.RequestId, ErrorCode.UnsupportedType, $"frame type {envelope.Type} is not accepted from clients");
                break;
        }

        return State != SessionState.Closed;
    }

    private bool OnHello(in Envelope hello)
    {
        if (hello.Has(FieldMask.Version) && hello.Version != ProtocolLimits.Version)
        {
            Fail(hello.RequestId, ErrorCode.BadFrame, $"protocol version {hello.Version} is not supported (server speaks {ProtocolLimits.Version})", SessionCloseKind.ProtocolError);
            return false;
        }

        var auth = _engine.Authenticator.Authenticate(hello.Token.Span, hello.ClientId.Span);
        if (!auth.Succeeded)
        {
            Fail(hello.RequestId, ErrorCode.Unauthorized, auth.Error!, SessionCloseKind.PolicyViolation);
            return false;
        }

        if (!auth.Tenant!.TryAddConnection())
        {
            Fail(hello.RequestId, ErrorCode.LimitExceeded, $"tenant '{auth.Tenant.Name}' is at its limit of {auth.Tenant.MaxConnections} connections", SessionCloseKind.PolicyViolation);
            return false;
        }

        _countedInTenant = true;
        Tenant = auth.Tenant;
        ClientId = auth.ClientId;
        _clientIdUtf8 = Encoding.UTF8.GetBytes(auth.ClientId!);
        _publishAllowed = auth.Publish;
        _subscribeAllowed = auth.Subscribe;
        // The handshake deadline may have closed the session while this HELLO was being checked.
        if (Interlocked.CompareExchange(ref _state, (int)SessionState.Open, (int)SessionState.AwaitingHello) != (int)SessionState.AwaitingHello)
        {
            return false;
        }

        if (Volatile.Read(ref _close) is not null)
        {
            // A close (from any thread) set its reason before its state: it won, the session does not open.
            Interlocked.Exchange(ref _state, (int)SessionState.Closed);
            return false;
        }

        _helloCompleted = true;

        var welcome = new Envelope(FrameType.Welcome)
            .WithVersion(ProtocolLimits.Version)
            .WithClientId(_clientIdUtf8)
            .WithTenant(Tenant!.NameUtf8)
            .WithNode(_engine.NodeNameUtf8);
        if (hello.RequestId != 0)
        {
            welcome = welcome.WithRequestId(hello.RequestId);
        }

        SendControl(welcome);
        Interlocked.Exchange(ref _welcomed, 1); // full fence: ordered before the read of _drainRequested below
        if (Volatile.Read(ref _drainRequested) != 0)
        {
            SendDrainOnce(); // the node started draining during the handshake
        }

        _engine.OnSessionOpened(this);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void OnPublish(in Envelope pub)
    {
        if (!CheckTopic(in pub, _publishAllowed, "publish"))
        {
            return;
        }

        if (SystemTopics.IsReserved(pub.Topic.Span))
        {
            SendError(pub.RequestId, ErrorCode.Forbidden, $"topics under '{SystemTopics.Prefix}' are reserved for the server");
            return;
        }

        if (!pub.Has(FieldMask.Payload))
        {
            SendError(pub.RequestId, ErrorCode.BadFrame, "PUB needs field 10 (payload)");
            return;
        }

        if (pub.Has(FieldMask.Key) && (pub.Key.IsEmpty || !System.Text.Unicode.Utf8.IsValid(pub.Key.Span)))
        {
            SendError(pub.RequestId, ErrorCode.BadFrame, $"field 21 (key) must be 1..{ProtocolLimits.MaxKeyBytes} bytes of valid UTF-8");
            return;
        }

        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (!_publishBucket.TryTake(now, out uint waitMs))
        {
            SendBackoff(pub.RequestId, waitMs, s_connectionRate);
            return;
        }

        if (!Tenant!.PublishBucket.TryTake(now, out waitMs))
        {
            SendBackoff(pub.RequestId, waitMs, s_tenantRate);
            return;
        }

        var frame = _engine.Frames.Rent();
        var pubWithPublisher = pub;
        pubWithPublisher.ClientId = _clientIdUtf8; // the publisher's identity is the session's, never client-supplied
        pubWithPublisher.Present |= FieldMask.ClientId;
        EnvelopeCodec.EncodeEventTemplate(frame, in pubWithPublisher, _engine.NowMicros());

        ulong hash = TopicHash.Compute(Tenant!.Id, pub.Topic.Span);
        var command = new ShardCommand { Kind = ShardCommandKind.Publish, Session = this, Frame = frame, Hash = hash, RequestId = pub.RequestId, Tenant = Tenant.Id };
        if (pub.Has(FieldMask.MessageId))
        {
            command.DedupKey = DedupKeyOf(Tenant.Id, pub.Topic.Span, _clientIdUtf8, pub.MessageId.Span);
            command.HasDedupKey = true;
        }
        var shard = _engine.ShardFor(hash);
        if (!Tenant.TryEnterShard(shard.Index))
        {
            frame.Release();
            SendBackoff(pub.RequestId, (uint)_engine.Options.BackoffRetryAfterMs, s_tenantLaneFull);
            return;
        }

        if (!shard.TryPost(in command))
        {
            Tenant.LeaveShard(shard.Index);
            frame.Release();
            SendBackoff(pub.RequestId, (uint)_engine.Options.BackoffRetryAfterMs, s_inboxFull);
        }
    }

    private static readonly byte[] s_tenantLaneFull = "this tenant's publishes are backed up on the owning shard"u8.ToArray();

    private static readonly byte[] s_groupFull = "a consumer group of this topic is full: its members are not keeping up"u8.ToArray();

    /// <summary>Shard thread: the publish was refused (its tenant's lane, or a consumer group of the topic, is full).</summary>
    internal void RejectPublish(ulong requestId, uint retryAfterMs, bool groupFull = false) =>
        SendBackoff(requestId, retryAfterMs, groupFull ? s_groupFull : s_tenantLaneFull);

    /// <summary>GROUP_ACK of an event this member does not hold (already acknowledged, lease expired, unknown).</summary>
    internal void SendGroupAckUnknown(ulong requestId, ulong seq)
    {
        var error = new Envelope(FrameType.Error).WithRequestId(requestId).WithSeq(seq)
            .WithError(ErrorCode.NotFound, "no such event in flight for this member (already acknowledged, or its lease expired and it was redelivered)");
        SendControl(in error);
    }

    /// <summary>BACKOFF: the publish was not accepted; retry after <paramref name="retryAfterMs"/>.</summary>
    private void SendBackoff(ulong requestId, uint retryAfterMs, byte[] reason)
    {
        _engine.CountBackoff();
        var backoff = new Envelope(FrameType.Backoff).WithRetryAfterMs(retryAfterMs);
        backoff.Reason = reason;
        backoff.Present |= FieldMask.Reason;
        if (requestId != 0)
        {
            backoff = backoff.WithRequestId(requestId);
        }

        SendControl(backoff);
    }

    /// <summary>128-bit identity of a publish for idempotency: tenant, topic, publisher and message id.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static UInt128 DedupKeyOf(int tenant, ReadOnlySpan<byte> topic, ReadOnlySpan<byte> clientId, ReadOnlySpan<byte> messageId)
    {
        // Lengths are bounded by the codec (256 + 128 + 128), so the key material fits on the stack.
        Span<byte> material = stackalloc byte[4 + 3 + ProtocolLimits.MaxTopicBytes + (2 * ProtocolLimits.MaxIdBytes)];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(material, tenant);
        int n = 4;
        material[n++] = (byte)topic.Length;
        topic.CopyTo(material[n..]);
        n += topic.Length;
        material[n++] = (byte)clientId.Length;
        clientId.CopyTo(material[n..]);
        n += clientId.Length;
        material[n++] = (byte)messageId.Length;
        messageId.CopyTo(material[n..]);
        n += messageId.Length;
        return System.IO.Hashing.XxHash128.HashToUInt128(material[..n]);
    }

    private void OnSubscribe(in Envelope sub)
    {
        if (sub.Has(FieldMask.Group))
        {
            OnJoinGroup(in sub);
            return;
        }

        if (sub.Has(FieldMask.Topic) && IsPattern(sub.Topic.Span))
        {
            OnSubscribePattern(in sub);
            return;
        }

        if (!CheckTopic(in sub, _subscribeAllowed, "subscribe"))
        {
            return;
        }

        string name = sub.TopicString;
        bool resume = sub.Has(FieldMask.Seq);
        if (resume && !sub.Has(FieldMask.Epoch))
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, "resuming needs both field 3 (epoch) and field 4 (seq)");
            return;
        }

        if (_subscriptions is not null && _subscriptions.TryGetValue(name, out var existing))
        {
            // A second subscription to the same topic on one connection (two consumers in one client) is
            // acknowledged with the current position; the connection still receives each event once.
            // A resuming SUB on a live subscription (a client repairing a gap) replays into it: RECOVERED and the
            // events after its seq, then the live ones, from the topic's shard thread, so no gap and no duplicate at
            // the seam; the subscription (and its presence) stays as it is.
            PostSubscribe(existing, in sub, resume, info: null);
            return;
        }

        if (SubscriptionCount >= _engine.Options.MaxSubscriptionsPerConnection)
        {
            SendError(sub.RequestId, ErrorCode.LimitExceeded, $"subscription limit of {_engine.Options.MaxSubscriptionsPerConnection} per connection reached");
            return;
        }

        byte[]? info = null;
        if (sub.Has(FieldMask.Payload))
        {
            if (sub.Payload.Length > _engine.Options.Presence.MaxInfoBytes)
            {
                SendError(sub.RequestId, ErrorCode.TooLarge, $"presence info of {sub.Payload.Length} bytes exceeds the limit of {_engine.Options.Presence.MaxInfoBytes}");
                return;
            }

            info = sub.Payload.ToArray();
        }

        var key = TopicKey.Create(Tenant!.Id, sub.Topic.Span);
        (_subscriptions ??= new Dictionary<string, TopicKey>(StringComparer.Ordinal)).Add(name, key);
        PostSubscribe(key, in sub, resume, info);
    }

    private void PostSubscribe(TopicKey key, in Envelope sub, bool resume, byte[]? info) =>
        _engine.ShardFor(key.Hash).Post(new ShardCommand
        {
            Kind = ShardCommandKind.Subscribe,
            Session = this,
            Topic = key,
            Hash = key.Hash,
            RequestId = sub.RequestId,
            Resume = resume,
            SinceEpoch = sub.Epoch,
            SinceSeq = sub.Seq,
            Info = info,
        });

    /// <summary>
    /// KV_GET / KV_SET / KV_DELETE: the key travels in field 2 (topic rules), the value in payload, ttl_ms, an
    /// expected version in seq (compare-and-set; 0 = must not exist) and flags = if_absent. GET needs subscribe
    /// permission on the key, SET and DELETE publish permission.
    /// </summary>
    private void OnKv(in Envelope kv)
    {
        bool write = kv.Type != FrameType.KvGet;
        if (!CheckTopic(in kv, write ? _publishAllowed : _subscribeAllowed, write ? "write key" : "read key"))
        {
            return;
        }

        if (SystemTopics.IsReserved(kv.Topic.Span))
        {
            SendError(kv.RequestId, ErrorCode.Forbidden, $"keys under '{SystemTopics.Prefix}' are reserved for the server");
            return;
        }

        if (kv.Type == FrameType.KvSet && !kv.Has(FieldMask.Payload))
        {
            SendError(kv.RequestId, ErrorCode.BadFrame, "KV_SET needs field 10 (payload, the value)");
            return;
        }

        var key = kv.Topic.Span;
        var value = kv.Type == FrameType.KvSet ? kv.Payload.Span : default;
        var carrier = _engine.Frames.Rent();
        var destination = carrier.GetSpan(key.Length + value.Length);
        key.CopyTo(destination);
        value.CopyTo(destination[key.Length..]);
        ((System.Buffers.IBufferWriter<byte>)carrier).Advance(key.Length + value.Length);

        ulong hash = TopicHash.Compute(Tenant!.Id, key);
        var command = new ShardCommand
        {
            Kind = kv.Type switch { FrameType.KvGet => ShardCommandKind.KvGet, FrameType.KvSet => ShardCommandKind.KvSet, _ => ShardCommandKind.KvDelete },
            Session = this,
            Frame = carrier,
            Hash = hash,
            Tenant = Tenant.Id,
            RequestId = kv.RequestId,
            KeyLength = key.Length,
            TtlMs = kv.TtlMs,
            HasExpectedVersion = kv.Has(FieldMask.Seq),
            ExpectedVersion = kv.Seq,
            IfAbsent = (kv.Flags & EventFlags.IfAbsent) != 0,
        };
        if (!_engine.ShardFor(hash).TryPost(in command))
        {
            carrier.Release();
            SendBackoff(kv.RequestId, (uint)_engine.Options.BackoffRetryAfterMs, s_inboxFull);
        }
    }

    /// <summary>SUB with a group: join the topic's (or the pattern's) consumer group with a credit budget (field 20).</summary>
    private void OnJoinGroup(in Envelope sub)
    {
        if (sub.Has(FieldMask.Topic) && IsPattern(sub.Topic.Span))
        {
            OnJoinPatternGroup(in sub);
            return;
        }

        if (!CheckTopic(in sub, _subscribeAllowed, "consume"))
        {
            return;
        }

        if (!TryGroupAndCredits(in sub, out string group, out int credits))
        {
            return;
        }

        string topic = sub.TopicString;
        _groups ??= [];
        if (!_groups.TryGetValue((topic, group), out var key))
        {
            if (SubscriptionCount >= _engine.Options.MaxSubscriptionsPerConnection)
            {
                SendError(sub.RequestId, ErrorCode.LimitExceeded, $"subscription limit of {_engine.Options.MaxSubscriptionsPerConnection} per connection reached");
                return;
            }

            if (OverlappingGroup(group, topic, sub.Topic.Span, pattern: null) is { } other)
            {
                SendGroupOverlap(sub.RequestId, group, topic, other);
                return;
            }

            key = TopicKey.Create(Tenant!.Id, sub.Topic.Span);
            _groups.Add((topic, group), key);
        }

        _engine.ShardFor(key.Hash).Post(new ShardCommand { Kind = ShardCommandKind.GroupJoin, Session = this, Topic = key, Hash = key.Hash, GroupName = group, Credits = credits, RequestId = sub.RequestId });
    }

    /// <summary>The group name (field 16, not empty) and the credits (field 20, capped; default when absent) of a joining SUB.</summary>
    private bool TryGroupAndCredits(in Envelope sub, out string group, out int credits)
    {
        group = "";
        credits = 0;
        if (sub.Group.IsEmpty)
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, "group name is empty");
            return false;
        }

        var options = _engine.Options.Groups;
        credits = sub.Has(FieldMask.Credits) ? (int)Math.Min(sub.Credits, (uint)options.MaxCredits) : options.DefaultCredits;
        if (credits < 1)
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, "credits must be at least 1");
            return false;
        }

        group = System.Text.Encoding.UTF8.GetString(sub.Group.Span);
        return true;
    }

    /// <summary>
    /// SUB {pattern, group, credits?}: join the pattern's consumer group in this tenant. The group lives on a home shard;
    /// every shard forwards the events of matching topics to it (see <see cref="PatternGroup"/>).
    /// </summary>
    private void OnJoinPatternGroup(in Envelope sub)
    {
        string text = sub.TopicString;
        if (!TopicPattern.TryParse(text, out var pattern, out string? why))
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, $"invalid topic pattern: {why}");
            return;
        }

        if (sub.Has(FieldMask.Seq))
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, "resume (epoch/seq) applies to one topic; a consumer group cannot resume");
            return;
        }

        if (_subscribeAllowed is not null && !_subscribeAllowed.AllowsPattern(pattern))
        {
            SendError(sub.RequestId, ErrorCode.Forbidden, $"not allowed to consume '{text}'");
            return;
        }

        if (!TryGroupAndCredits(in sub, out string group, out int credits))
        {
            return;
        }

        _patternGroups ??= [];
        if (!_patternGroups.TryGetValue((text, group), out var patternGroup))
        {
            if (SubscriptionCount >= _engine.Options.MaxSubscriptionsPerConnection)
            {
                SendError(sub.RequestId, ErrorCode.LimitExceeded, $"subscription limit of {_engine.Options.MaxSubscriptionsPerConnection} per connection reached");
                return;
            }

            if (OverlappingGroup(group, text, default, pattern) is { } other)
            {
                SendGroupOverlap(sub.RequestId, group, text, other);
                return;
            }

            patternGroup = _engine.JoinPatternGroup(Tenant!.Id, pattern, group);
            _patternGroups.Add((text, group), patternGroup);
        }

        patternGroup.Home.Post(new ShardCommand { Kind = ShardCommandKind.GroupJoin, Session = this, PatternGroup = patternGroup, Credits = credits, RequestId = sub.RequestId });
    }

    /// <summary>
    /// Another group of the same name this connection is in whose topics overlap the one being joined: a GROUP_ACK names
    /// only (topic, group, seq), so it could not tell the two apart. Null when there is none.
    /// </summary>
    private string? OverlappingGroup(string group, string joining, ReadOnlySpan<byte> topic, TopicPattern? pattern)
    {
        if (_patternGroups is not null)
        {
            foreach (var ((otherPattern, otherGroup), other) in _patternGroups)
            {
                if (otherGroup == group && otherPattern != joining && (pattern is null ? other.Pattern.Matches(topic) : other.Pattern.Overlaps(pattern)))
                {
                    return otherPattern;
                }
            }
        }

        if (pattern is not null && _groups is not null)
        {
            foreach (var ((otherTopic, otherGroup), key) in _groups)
            {
                if (otherGroup == group && pattern.Matches(key.Utf8))
                {
                    return otherTopic;
                }
            }
        }

        return null;
    }

    private void SendGroupOverlap(ulong requestId, string group, string joining, string other) =>
        SendError(requestId, ErrorCode.Conflict, $"this connection is already in group '{group}' on '{other}', which overlaps '{joining}': a GROUP_ACK could not tell them apart");

    /// <summary>
    /// GROUP_ACK {topic, group, seq}: this member finished the event. The topic is always the event's concrete topic: it
    /// names a topic group, or else the pattern group of that name whose pattern matches it.
    /// One per event a group member handles, so it allocates nothing: memberships are matched on the frame's bytes
    /// (a connection is in a handful of groups), and a pattern group's concrete topics come from a small cache.
    /// </summary>
    private void OnGroupAck(in Envelope ack)
    {
        bool inProgress = ack.Has(FieldMask.Flags) && (ack.Flags & EventFlags.InProgress) != 0;
        if (ack.Has(FieldMask.Seq) && ack.Has(FieldMask.Topic))
        {
            var topic = ack.Topic.Span;
            var group = ack.Group.Span;
            if (_groups is not null)
            {
                foreach (var ((_, name), key) in _groups)
                {
                    if (key.Utf8.AsSpan().SequenceEqual(topic) && Utf8Equals(group, name))
                    {
                        _engine.ShardFor(key.Hash).Post(new ShardCommand { Kind = ShardCommandKind.GroupAck, Session = this, Topic = key, Hash = key.Hash, GroupName = name, AckSeq = ack.Seq, RequestId = ack.RequestId, InProgress = inProgress });
                        return;
                    }
                }
            }

            if (_patternGroups is not null)
            {
                foreach (var ((_, name), patternGroup) in _patternGroups)
                {
                    if (Utf8Equals(group, name) && patternGroup.Pattern.Matches(topic))
                    {
                        patternGroup.Home.Post(new ShardCommand { Kind = ShardCommandKind.GroupAck, Session = this, PatternGroup = patternGroup, Topic = AckedTopic(topic), AckSeq = ack.Seq, RequestId = ack.RequestId, InProgress = inProgress });
                        return;
                    }
                }
            }
        }

        string topicText = ack.Has(FieldMask.Topic) ? ack.TopicString : "";
        string groupText = System.Text.Encoding.UTF8.GetString(ack.Group.Span);
        SendError(ack.RequestId, ErrorCode.NotFound, $"GROUP_ACK needs topic, group and seq of a group this connection is in ('{groupText}' on '{topicText}')");
    }

    private static bool Utf8Equals(ReadOnlySpan<byte> utf8, string text)
    {
        if (System.Text.Ascii.IsValid(utf8))
        {
            return System.Text.Ascii.Equals(utf8, text);
        }

        int length = System.Text.Encoding.UTF8.GetByteCount(text);
        if (length != utf8.Length)
        {
            return false;
        }

        Span<byte> encoded = length <= 512 ? stackalloc byte[length] : new byte[length];
        System.Text.Encoding.UTF8.GetBytes(text, encoded);
        return encoded.SequenceEqual(utf8);
    }

    // The concrete topics of recent pattern-group acks: a member usually works through a few topics, and a miss only
    // costs the key's allocation.
    private TopicKey?[]? _ackedTopics;
    private int _ackedTopicNext;

    private TopicKey AckedTopic(ReadOnlySpan<byte> topic)
    {
        _ackedTopics ??= new TopicKey?[8];
        foreach (var cached in _ackedTopics)
        {
            if (cached is not null && cached.Utf8.AsSpan().SequenceEqual(topic))
            {
                return cached;
            }
        }

        var key = TopicKey.Create(Tenant!.Id, topic);
        _ackedTopics[_ackedTopicNext] = key;
        _ackedTopicNext = (_ackedTopicNext + 1) % _ackedTopics.Length;
        return key;
    }

    /// <summary>PRESENCE from a client asks for the topic's current subscribers.</summary>
    private void OnPresenceQuery(in Envelope query)
    {
        if (!CheckTopic(in query, _subscribeAllowed, "see presence of"))
        {
            return;
        }

        var key = TopicKey.Create(Tenant!.Id, query.Topic.Span);
        _engine.ShardFor(key.Hash).Post(new ShardCommand { Kind = ShardCommandKind.PresenceQuery, Session = this, Topic = key, Hash = key.Hash, RequestId = query.RequestId });
    }

    /// <summary>Reply to a presence query (shard thread): payload = MessagePack array of [client_id, info|nil].</summary>
    internal void SendPresenceList(ulong requestId, TopicKey topic, TopicStream? stream)
    {
        var list = new System.Buffers.ArrayBufferWriter<byte>(256);
        var w = new MessagePack.MessagePackWriter(list);
        var subscribers = stream is null ? [] : stream.Subscribers;
        var infos = stream is null ? [] : stream.Infos;
        w.WriteArrayHeader(subscribers.Length);
        for (int i = 0; i < subscribers.Length; i++)
        {
            w.WriteArrayHeader(2);
            w.WriteString(subscribers[i].ClientIdUtf8);
            if (infos[i] is { } info)
            {
                w.Write(info);
            }
            else
            {
                w.WriteNil();
            }
        }

        w.Flush();
        var reply = new Envelope(FrameType.Presence).WithTopic(topic.Utf8).WithPayload(list.WrittenMemory.ToArray());
        if (stream is not null)
        {
            reply = reply.WithEpoch(stream.Epoch).WithSeq(stream.Seq);
        }

        if (requestId != 0)
        {
            reply = reply.WithRequestId(requestId);
        }

        SendControl(in reply);
    }

    private static bool IsPattern(ReadOnlySpan<byte> topic) =>
        topic.IndexOfAny(TopicName.SingleWildcard, TopicName.TailWildcard) >= 0;

    /// <summary>A wildcard subscription: indexed on every shard; the last one to register it replies.</summary>
    private void OnSubscribePattern(in Envelope sub)
    {
        string text = sub.TopicString;
        if (!TopicPattern.TryParse(text, out var pattern, out string? why))
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, $"invalid topic pattern: {why}");
            return;
        }

        if (sub.Has(FieldMask.Seq))
        {
            SendError(sub.RequestId, ErrorCode.BadFrame, "resume (epoch/seq) applies to one topic; a pattern subscription cannot resume");
            return;
        }

        if (_subscribeAllowed is not null && !_subscribeAllowed.AllowsPattern(pattern))
        {
            SendError(sub.RequestId, ErrorCode.Forbidden, $"not allowed to subscribe to '{text}'");
            return;
        }

        _patternSubscriptions ??= new(StringComparer.Ordinal);
        if (_patternSubscriptions.ContainsKey(text))
        {
            SendError(sub.RequestId, ErrorCode.LimitExceeded, $"already subscribed to '{text}'");
            return;
        }

        if (SubscriptionCount >= _engine.Options.MaxSubscriptionsPerConnection)
        {
            SendError(sub.RequestId, ErrorCode.LimitExceeded, $"subscription limit of {_engine.Options.MaxSubscriptionsPerConnection} per connection reached");
            return;
        }

        var subscription = new PatternSubscription(this, Tenant!.Id, pattern);
        _patternSubscriptions.Add(text, subscription);
        _engine.Broadcast(ShardCommandKind.SubscribePattern, subscription, sub.RequestId);
    }

    private void OnUnsubscribe(in Envelope unsub)
    {
        if (!unsub.Has(FieldMask.Topic))
        {
            SendError(unsub.RequestId, ErrorCode.BadFrame, "UNSUB needs field 2 (topic)");
            return;
        }

        string name = unsub.TopicString;
        if (unsub.Has(FieldMask.Group))
        {
            string groupName = System.Text.Encoding.UTF8.GetString(unsub.Group.Span);
            if (_patternGroups is not null && _patternGroups.Remove((name, groupName), out var patternGroup))
            {
                LeavePatternGroup(patternGroup, UnsubscribeReplyId(unsub.RequestId));
                return;
            }

            if (_groups is null || !_groups.Remove((name, groupName), out var groupTopic))
            {
                SendError(unsub.RequestId, ErrorCode.NotFound, $"not a member of group '{groupName}' on '{name}'");
                return;
            }

            _engine.ShardFor(groupTopic.Hash).Post(new ShardCommand { Kind = ShardCommandKind.GroupLeave, Session = this, Topic = groupTopic, Hash = groupTopic.Hash, GroupName = groupName, RequestId = UnsubscribeReplyId(unsub.RequestId) });
            return;
        }

        if (_patternSubscriptions is not null && _patternSubscriptions.Remove(name, out var pattern))
        {
            _engine.Broadcast(ShardCommandKind.UnsubscribePattern, pattern, UnsubscribeReplyId(unsub.RequestId));
            return;
        }

        if (_subscriptions is null || !_subscriptions.Remove(name, out var key))
        {
            SendError(unsub.RequestId, ErrorCode.NotFound, $"not subscribed to '{name}'");
            return;
        }

        _engine.ShardFor(key.Hash).Post(new ShardCommand { Kind = ShardCommandKind.Unsubscribe, Session = this, Topic = key, Hash = key.Hash, RequestId = UnsubscribeReplyId(unsub.RequestId) });
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool CheckTopic(in Envelope e, TopicPatternSet? allowed, string operation)
    {
        if (!e.Has(FieldMask.Topic))
        {
            SendError(e.RequestId, ErrorCode.BadFrame, $"{operation} needs field 2 (topic)");
            return false;
        }

        var topic = e.Topic.Span;
        if (!TopicName.Validate(topic, out string? why))
        {
            SendError(e.RequestId, ErrorCode.BadFrame, $"invalid topic: {why}");
            return false;
        }

        if (allowed is not null && !allowed.Allows(topic))
        {
            SendError(e.RequestId, ErrorCode.Forbidden, $"not allowed to {operation} to '{e.TopicString}'");
            return false;
        }

        return true;
    }

    /// <summary>The connection is gone (read loop ended): drop every subscription on its shard.</summary>
    public void OnTransportClosed()
    {
        // Not _state: the transport usually closes the session before it reports the connection gone.
        bool wasOpen = _helloCompleted;
        _helloCompleted = false;
        Close(SessionCloseKind.Normal, "connection closed");
        if (_countedInTenant)
        {
            _countedInTenant = false;
            Tenant!.RemoveConnection();
        }
        if (_subscriptions is not null)
        {
            foreach (var key in _subscriptions.Values)
            {
                _engine.ShardFor(key.Hash).Post(new ShardCommand { Kind = ShardCommandKind.Unsubscribe, Session = this, Topic = key, Hash = key.Hash });
            }

            _subscriptions.Clear();
        }
        if (_groups is not null)
        {
            foreach (var ((_, group), key) in _groups)
            {
                _engine.ShardFor(key.Hash).Post(new ShardCommand { Kind = ShardCommandKind.GroupLeave, Session = this, Topic = key, Hash = key.Hash, GroupName = group });
            }

            _groups.Clear();
        }

        if (_patternGroups is not null)
        {
            foreach (var patternGroup in _patternGroups.Values)
            {
                LeavePatternGroup(patternGroup, 0);
            }

            _patternGroups.Clear();
        }

        if (_patternSubscriptions is not null)
        {
            foreach (var pattern in _patternSubscriptions.Values)
            {
                _engine.Broadcast(ShardCommandKind.UnsubscribePattern, pattern, 0);
            }

            _patternSubscriptions.Clear();
        }

        Outbox.DiscardAll();
        if (wasOpen)
        {
            _engine.OnSessionClosed(this, CloseReason?.Reason);
        }
    }

    /// <summary>Leaves a pattern group: what this member held goes back to the others (on the group's home shard).</summary>
    private void LeavePatternGroup(PatternGroup patternGroup, ulong requestId)
    {
        _engine.LeavePatternGroup(patternGroup);
        patternGroup.Home.Post(new ShardCommand { Kind = ShardCommandKind.GroupLeave, Session = this, PatternGroup = patternGroup, RequestId = requestId });
    }

    private Action<object?>? _closing;
    private object? _closingState;

    /// <summary>
    /// The transport's hook, run once with <paramref name="state"/> when the session starts closing (from whichever
    /// thread closes it): it bounds the connection's teardown even when the peer never reads nor closes. A static
    /// callback and a state object cost no delegate per connection.
    /// </summary>
    public void OnClosing(Action<object?> callback, object? state)
    {
        _closingState = state;
        _closing = callback;
    }

    /// <summary>Starts closing (any thread). The first reason wins; the outbox stops accepting frames and the writer finishes.</summary>
    public void Close(SessionCloseKind kind, string reason)
    {
        if (Interlocked.CompareExchange(ref _close, new SessionClose(kind, reason), null) is null)
        {
            Interlocked.Exchange(ref _state, (int)SessionState.Closed);

            Outbox.Complete();
            _closing?.Invoke(_closingState);
        }
    }

    /// <summary>
    /// Tells the client this node is going away: DRAIN with a reconnect delay (and optionally another node), and
    /// from now on PUB/SUB get ERROR 503 instead of being accepted, so nothing accepted is left behind.
    /// </summary>
    public void Drain(uint reconnectAfterMs, string? node)
    {
        _drainRetryAfterMs = reconnectAfterMs;
        _drainNode = node;
        Interlocked.Exchange(ref _drainRequested, 1); // full fence: ordered before the read of _welcomed below
        // Only after the WELCOME: before it the client does not speak the protocol yet (a WebSocket may not even
        // have its 101). A session still in its handshake gets the DRAIN right after its WELCOME (OnHello).
        if (Volatile.Read(ref _welcomed) != 0)
        {
            SendDrainOnce();
        }
    }

    private void SendDrainOnce()
    {
        if (Interlocked.Exchange(ref _drainSent, 1) != 0)
        {
            return;
        }

        var drain = new Envelope(FrameType.Drain).WithRetryAfterMs(_drainRetryAfterMs);
        if (!string.IsNullOrEmpty(_drainNode))
        {
            drain = drain.WithNode(_drainNode);
        }

        SendControl(in drain);
    }

    /// <summary>Keepalive: a PING the client must answer (any inbound frame counts as activity).</summary>
    public void SendPing() => SendControl(new Envelope(FrameType.Ping));

    /// <summary>
    /// The handshake deadline passed: closes the session only if it is still waiting for HELLO, in one step, so a HELLO
    /// accepted at the same moment keeps its session (a check and then a close could close one that just opened).
    /// </summary>
    public bool TryExpireHandshake(string reason)
    {
        if (Interlocked.CompareExchange(ref _state, (int)SessionState.Closed, (int)SessionState.AwaitingHello) != (int)SessionState.AwaitingHello)
        {
            return false; // HELLO was accepted (its own CAS fails from now on), or the session is closed already
        }

        if (Interlocked.CompareExchange(ref _close, new SessionClose(SessionCloseKind.PolicyViolation, reason), null) is null)
        {
            Outbox.Complete();
            _closing?.Invoke(_closingState);
        }

        return true;
    }

    internal void CloseAsSlowConsumer()
    {
        if (_close is null)
        {
            _engine.CountSlowConsumer();
            Close(SessionCloseKind.SlowConsumer, $"slow consumer: more than {Outbox.QueuedBytes} bytes or {Outbox.Count} frames waiting; events dropped: {Outbox.Dropped}");
        }
    }

    /// <summary>Transport-detected violation (oversized or broken frame): ERROR to the client, then close.</summary>
    public void Reject(ErrorCode code, string reason, SessionCloseKind kind) => Fail(0, code, reason, kind);

    /// <summary>Sends ERROR then closes.</summary>
    private void Fail(ulong requestId, ErrorCode code, string reason, SessionCloseKind kind)
    {
        SendError(requestId, code, reason);
        Close(kind, reason);
    }

    private void SendError(ulong requestId, ErrorCode code, string reason)
    {
        _engine.CountError();
        var error = new Envelope(FrameType.Error).WithError(code, reason);
        if (requestId != 0)
        {
            error = error.WithRequestId(requestId);
        }

        SendControl(error);
    }

    /// <summary>
    /// Encodes and queues a control frame (any thread). <paramref name="ordered"/> keeps it in line with events
    /// (subscription replies); otherwise it takes the control lane, ahead of any event backlog.
    /// </summary>
    internal void SendControl(in Envelope envelope, bool ordered = false)
    {
        var frame = _engine.Frames.Rent();
        EnvelopeCodec.Encode(frame, in envelope);
        var result = ordered ? Outbox.EnqueueOrdered(frame) : Outbox.Enqueue(frame);
        if (result == EnqueueResult.Overflow)
        {
            CloseAsSlowConsumer();
        }
    }

    /// <summary>RequestId meaning "reply with an ACK that carries no request id" (an UNSUB sent without one).</summary>
    internal const ulong AckWithoutRequestId = ulong.MaxValue;

    /// <summary>An UNSUB is always acknowledged; 0 (no request id) becomes <see cref="AckWithoutRequestId"/>, since 0 means silent.</summary>
    private static ulong UnsubscribeReplyId(ulong requestId) => requestId == 0 ? AckWithoutRequestId : requestId;

    /// <summary>ACK for a publish or unsubscribe (shard thread). RequestId <see cref="AckWithoutRequestId"/> = ACK without id.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SendAck(ulong requestId, ulong epoch, ulong seq, EventFlags flags, bool ordered = false)
    {
        var ack = new Envelope(FrameType.Ack);
        if (requestId != AckWithoutRequestId)
        {
            ack.RequestId = requestId;
            ack.Present |= FieldMask.RequestId;
        }

        if (epoch != 0)
        {
            ack.Epoch = epoch;
            ack.Seq = seq;
            ack.Present |= FieldMask.Epoch | FieldMask.Seq;
        }

        if (flags != EventFlags.None)
        {
            ack.Flags = flags;
            ack.Present |= FieldMask.Flags;
        }

        SendControl(in ack, ordered);
    }

    /// <summary>ACK for a pattern subscription (the last shard's thread): the pattern, no position.</summary>
    internal void SendPatternAck(ulong requestId, TopicPattern pattern)
    {
        var ack = new Envelope(FrameType.Ack).WithTopic(pattern.Utf8.ToArray());
        if (requestId != 0)
        {
            ack = ack.WithRequestId(requestId);
        }

        SendControl(in ack, ordered: true);
    }

    /// <summary>Reply to a subscribe (shard thread): ACK, RECOVERED or NOT_RECOVERED with the topic's epoch and last seq.</summary>
    internal void SendSubscribed(FrameType type, ulong requestId, TopicKey topic, ulong epoch, ulong seq)
    {
        var ack = new Envelope(type).WithTopic(topic.Utf8).WithEpoch(epoch).WithSeq(seq);
        if (requestId != 0)
        {
            ack = ack.WithRequestId(requestId);
        }

        SendControl(in ack, ordered: true);
    }

    public override string ToString() => $"session {Id} ({Transport} {RemoteEndPoint}, client {ClientId ?? "?"})";
}
