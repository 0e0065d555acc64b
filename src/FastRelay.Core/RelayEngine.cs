using System.Runtime.CompilerServices;
using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Core.Sessions;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core;

/// <summary>
/// The relay engine: N shards (one thread each) owning topics by (tenant, topic) hash, the frame pool, and the
/// session factory. Transports create a <see cref="Session"/> per connection and feed it envelopes.
/// </summary>
public sealed class RelayEngine : IDisposable
{
    private readonly Shard[] _shards;
    private long _sessionsOpen;
    private long _sessionsTotal;
    private long _backoffs;
    private long _errors;
    private long _slowConsumers;
    private int _disposed;
    private readonly Lock _patternGroupLock = new();
    private readonly Dictionary<(int Tenant, string Pattern, string Name), PatternGroup> _patternGroupsByKey = [];
    private PatternGroup[] _patternGroups = [];
    private int _patternGroupVersion;

    public RelayEngine(RelayOptions? options = null, TimeProvider? time = null)
    {
        Options = options ?? new RelayOptions();
        Options.Validate();
        Authenticator = new Authenticator(Options.Tenancy, Options.Limits, Options.MaxMessageBytes, time ?? TimeProvider.System);
        NodeNameUtf8 = Encoding.UTF8.GetBytes(Options.NodeName);
        OutboxLimits = OutboxLimits.From(Options);
        _shards = new Shard[Options.EffectiveShards];
        FairScheduling = Authenticator.EnableFairness(_shards.Length, Options.ShardInboxCapacity);
        for (int i = 0; i < _shards.Length; i++)
        {
            _shards[i] = new Shard(this, i, Options.ShardInboxCapacity);
        }

        foreach (var shard in _shards)
        {
            shard.Start();
        }
    }

    public RelayOptions Options { get; }

    public FramePool Frames { get; } = new();

    internal Authenticator Authenticator { get; }

    internal byte[] NodeNameUtf8 { get; }

    internal OutboxLimits OutboxLimits { get; }

    /// <summary>Several tenants share the shards: publishes that back up wait in per-tenant lanes (deficit round robin).</summary>
    internal bool FairScheduling { get; }

    /// <summary>Clock (ms) for KV TTLs and consumer-group leases; tests replace it to expire without waiting.</summary>
    internal Func<long> ClockMs { get; set; } = static () => Environment.TickCount64;

    public int ShardCount => _shards.Length;

    /// <summary>Sessions that completed HELLO and are still connected.</summary>
    public long SessionsOpen => Volatile.Read(ref _sessionsOpen);

    public long SessionsTotal => Volatile.Read(ref _sessionsTotal);

    /// <summary>BACKOFF frames sent because a shard inbox was full.</summary>
    public long Backoffs => Volatile.Read(ref _backoffs);

    /// <summary>Bytes of retained events (history for resume) on all shards.</summary>
    public long RetainedBytes => _shards.Sum(s => s.RetainedBytes);

    /// <summary>Retained events dropped to keep within <c>Retention:MaxBytes</c>.</summary>
    public long RetentionEvicted => _shards.Sum(s => s.RetentionEvicted);

    /// <summary>ERROR frames sent.</summary>
    public long Errors => Volatile.Read(ref _errors);

    /// <summary>Sessions closed as slow consumers.</summary>
    public long SlowConsumers => Volatile.Read(ref _slowConsumers);

    /// <summary>Events accepted and sequenced, over all shards.</summary>
    public long Published
    {
        get
        {
            long sum = 0;
            foreach (var shard in _shards)
            {
                sum += shard.Published;
            }

            return sum;
        }
    }

    /// <summary>Event copies handed to subscriber outboxes, over all shards.</summary>
    public long Delivered
    {
        get
        {
            long sum = 0;
            foreach (var shard in _shards)
            {
                sum += shard.Delivered;
            }

            return sum;
        }
    }

    /// <summary>Creates the engine-side state for a new connection.</summary>
    public Session CreateSession(string remoteEndPoint, string transport)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return new Session(this, remoteEndPoint, transport);
    }

    /// <summary>The shard that owns every topic whose hash is <paramref name="hash"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Shard ShardFor(ulong hash) => _shards[(int)(hash % (ulong)_shards.Length)];

    /// <summary>Sends a pattern (un)subscription to every shard; the last to apply it replies.</summary>
    internal void Broadcast(ShardCommandKind kind, PatternSubscription pattern, ulong requestId)
    {
        pattern.BeginBroadcast(kind == ShardCommandKind.SubscribePattern, _shards.Length);
        foreach (var shard in _shards)
        {
            shard.Post(new ShardCommand { Kind = kind, Session = pattern.Session, Pattern = pattern, RequestId = requestId });
        }
    }

    /// <summary>The index of the shard owning (tenant, topic).</summary>
    public int ShardIndexOf(int tenant, ReadOnlySpan<byte> topicUtf8) => ShardFor(TopicHash.Compute(tenant, topicUtf8)).Index;

    /// <summary>Runs <paramref name="action"/> on every shard thread and waits (diagnostics, tests).</summary>
    public Task OnEveryShardAsync(Action<int> action) =>
        Task.WhenAll(_shards.Select(s => s.InvokeAsync(() => action(s.Index))));

    /// <summary>Bytes allocated so far by all shard threads (each shard reads its own thread's counter).</summary>
    public async Task<long> GetShardAllocatedBytesAsync()
    {
        long total = 0;
        await OnEveryShardAsync(_ => Interlocked.Add(ref total, GC.GetAllocatedBytesForCurrentThread()));
        return total;
    }

    /// <summary>Completes when every command handed to a shard before the call has been processed.</summary>
    public Task QuiesceAsync() => OnEveryShardAsync(static _ => { });

    /// <summary>Runs every shard's maintenance pass now (retention age, dedup expiry, forgetting idle topics).</summary>
    public Task MaintainAsync() => Task.WhenAll(_shards.Select(s => s.InvokeAsync(() => s.Maintain(Environment.TickCount64))));

    /// <summary>Every pattern group (copy on write); shards match their topics against it when the version changes.</summary>
    internal PatternGroup[] PatternGroups => Volatile.Read(ref _patternGroups);

    /// <summary>Changes whenever a pattern group is created or forgotten.</summary>
    internal int PatternGroupVersion => Volatile.Read(ref _patternGroupVersion);

    /// <summary>
    /// A session joins (tenant, pattern, name): the group is created on first use and published to every shard before
    /// the join is posted, so every event sequenced after the join's ACK is forwarded to it.
    /// </summary>
    internal PatternGroup JoinPatternGroup(int tenant, TopicPattern pattern, string name)
    {
        lock (_patternGroupLock)
        {
            var key = (tenant, pattern.ToString(), name);
            if (!_patternGroupsByKey.TryGetValue(key, out var group))
            {
                var home = ShardFor(TopicHash.Compute(tenant, Encoding.UTF8.GetBytes($"{key.Item2}\n{name}")));
                group = new PatternGroup(tenant, pattern, name, home, Options.Groups.PendingCapacity);
                _patternGroupsByKey.Add(key, group);
                home.SetHomed([.. home.Homed, group]);
                Volatile.Write(ref _patternGroups, [.. _patternGroups, group]);
                Interlocked.Increment(ref _patternGroupVersion);
            }

            group.Holders++;
            return group;
        }
    }

    /// <summary>A session left the group (its leave is on its way to the home shard).</summary>
    internal void LeavePatternGroup(PatternGroup group)
    {
        lock (_patternGroupLock)
        {
            group.Holders--;
        }
    }

    /// <summary>
    /// Home shard, after a leave: a group nobody is in or joining, holding nothing, is forgotten. Events forwarded to it
    /// meanwhile are dropped on the home (there is no member to give them to, as for a topic group that is gone).
    /// </summary>
    internal void TryForgetPatternGroup(PatternGroup group)
    {
        lock (_patternGroupLock)
        {
            if (group.Holders != 0 || !group.Group.IsEmpty || group.Retired)
            {
                return;
            }

            _patternGroupsByKey.Remove((group.Tenant, group.Pattern.ToString(), group.Name));
            group.Retire();
            Volatile.Write(ref _patternGroups, Array.FindAll(_patternGroups, g => !ReferenceEquals(g, group)));
            Interlocked.Increment(ref _patternGroupVersion);
        }
    }

    /// <summary>Home shard: a retired group has nothing left in transit; the home stops looking at it.</summary>
    internal void ReleaseHome(PatternGroup group)
    {
        lock (_patternGroupLock)
        {
            group.Home.SetHomed(Array.FindAll(group.Home.Homed, g => !ReferenceEquals(g, group)));
        }
    }

    /// <summary>
    /// A consumer group's members, waiting events (pending, and for a pattern group also those on their way to it) and
    /// unacknowledged events (cold path; operators, tests). <paramref name="topic"/> may be a pattern.
    /// </summary>
    public async Task<(int Members, int Pending, int InFlight)?> GetGroupStateAsync(int tenant, string topic, string group)
    {
        if (topic.AsSpan().IndexOfAny('*', '>') >= 0)
        {
            PatternGroup? patternGroup;
            lock (_patternGroupLock)
            {
                _patternGroupsByKey.TryGetValue((tenant, topic, group), out patternGroup);
            }

            if (patternGroup is null)
            {
                return null;
            }

            (int, int, int)? state = null;
            await patternGroup.Home.InvokeAsync(() => state = Shard.GetGroupState(patternGroup));
            return state;
        }

        var key = TopicKey.Create(tenant, Encoding.UTF8.GetBytes(topic));
        var shard = ShardFor(key.Hash);
        (int, int, int)? result = null;
        await shard.InvokeAsync(() => result = shard.GetGroupState(key, group));
        return result;
    }

    /// <summary>Keys held in the KV store over all shards (cold path).</summary>
    public async Task<int> CountKeysAsync()
    {
        int total = 0;
        await OnEveryShardAsync(i => Interlocked.Add(ref total, _shards[i].KvCount));
        return total;
    }

    /// <summary>Epoch, last seq and subscriber count of a topic (cold path).</summary>
    public async Task<(ulong Epoch, ulong Seq, int Subscribers)?> GetTopicPositionAsync(int tenant, string topic)
    {
        var key = TopicKey.Create(tenant, Encoding.UTF8.GetBytes(topic));
        var shard = ShardFor(key.Hash);
        (ulong, ulong, int)? result = null;
        await shard.InvokeAsync(() =>
        {
            if (shard.TryGetPosition(key, out var epoch, out var seq, out var subscribers))
            {
                result = (epoch, seq, subscribers);
            }
        });
        return result;
    }

    /// <summary>Server ingest time stamped on events: Unix time in microseconds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal long NowMicros() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;

    internal void OnSessionOpened(Session session)
    {
        Interlocked.Increment(ref _sessionsOpen);
        Interlocked.Increment(ref _sessionsTotal);
        PublishSystem(session.Tenant!, SystemTopics.Connections, SystemTopics.LifecyclePayload(session, connected: true, reason: null));
    }

    internal void OnSessionClosed(Session session, string? reason)
    {
        Interlocked.Decrement(ref _sessionsOpen);
        PublishSystem(session.Tenant!, SystemTopics.Connections, SystemTopics.LifecyclePayload(session, connected: false, reason ?? "closed"));
    }

    private static readonly byte[] s_serverClientId = "$server"u8.ToArray();

    /// <summary>Publishes node statistics to <c>$sys.stats</c> in every tenant's namespace.</summary>
    public void PublishStats(long uptimeMs)
    {
        var payload = SystemTopics.StatsPayload(this, Options.NodeName, uptimeMs);
        foreach (var tenant in Authenticator.Tenants)
        {
            PublishSystem(tenant, SystemTopics.Stats, payload);
        }
    }

    /// <summary>Publishes a server-originated event (lifecycle) into a tenant's namespace; never dropped for a full inbox.</summary>
    public void PublishSystem(TenantContext tenant, string topic, ReadOnlyMemory<byte> payload)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        var topicUtf8 = SystemTopics.TopicUtf8(topic);
        var frame = Frames.Rent();
        var pub = new Envelope(FrameType.Pub).WithTopic(topicUtf8).WithClientId(s_serverClientId).WithPayload(payload);
        EnvelopeCodec.EncodeEventTemplate(frame, in pub, NowMicros());
        ulong hash = TopicHash.Compute(tenant.Id, topicUtf8);
        ShardFor(hash).Post(new ShardCommand { Kind = ShardCommandKind.Publish, Session = null!, Frame = frame, Hash = hash, Tenant = tenant.Id });
    }

    internal void CountBackoff() => Interlocked.Increment(ref _backoffs);

    internal void CountError() => Interlocked.Increment(ref _errors);

    internal void CountSlowConsumer() => Interlocked.Increment(ref _slowConsumers);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var shard in _shards)
        {
            shard.Dispose();
        }
    }
}
