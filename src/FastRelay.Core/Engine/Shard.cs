using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastRelay.Core.Sessions;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// Owns the topics whose (tenant, topic) hash maps to it, on one dedicated thread: seq assignment, subscriber
/// lists and fan-out happen here without locks. Work arrives through a bounded lock-free MPSC inbox.
/// </summary>
internal sealed class Shard : IDisposable
{
    // Brief: a spinning shard burns a core that connection threads need (measured ~32 µs per idle episode at 64 × 20).
    private const int SpinsBeforePark = 16;
    private const int MaintenanceIntervalMs = 1000;
    private const int LaneQuantum = 64;

    private readonly RelayEngine _engine;
    private readonly MpscRing<ShardCommand> _inbox;
    private readonly Dictionary<TopicKey, TopicStream> _topics = new(TopicKeyComparer.Instance);
    private readonly Dictionary<TopicKey, TopicStream>.AlternateLookup<TopicRef> _lookup;
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly Thread _thread;
    private volatile bool _stopping;
    private int _parked;
    private ulong _lastEpoch;
    private long _published;
    private long _delivered;
    private long _duplicates;
    private long _replayed;
    private long _nextMaintenanceMs;
    private readonly DedupTable _dedup;
    private readonly List<PatternSubscription> _patterns = [];
    private readonly Dictionary<int, TenantLane> _lanes = [];
    private readonly KvStore _kv = new();
    private readonly List<TenantLane> _activeLanes = [];
    private int _laneCursor;
    private long _laneRejections;
    private long _retainedBytes;
    private readonly long _retentionBudget;
    private readonly List<TopicStream> _retaining = [];
    private int _retentionSweep;
    private long _retentionEvicted;
    private long _deadLettersLost;
    private int _patternVersion;
    private readonly RetentionOptions _retention;
    private readonly SlabPool _slabs;
    private readonly int _laneCapacity;
    private readonly GroupOptions _groupOptions;
    private readonly Action<ConsumerGroup, Frame, TopicKey, ulong> _deadLetter;
    private PatternGroup[] _homed = [];

    public Shard(RelayEngine engine, int index, int inboxCapacity)
    {
        _engine = engine;
        Index = index;
        _inbox = new MpscRing<ShardCommand>(inboxCapacity);
        _lookup = _topics.GetAlternateLookup<TopicRef>();
        _retention = engine.Options.Retention;
        _laneCapacity = engine.Options.TenantLaneCapacity;
        _groupOptions = engine.Options.Groups;
        _deadLetter = DeadLetter;
        _dedup = new DedupTable(engine.Options.Dedup.MaxEntriesPerShard, (long)engine.Options.Dedup.Window.TotalMilliseconds);
        _retentionBudget = _retention.MaxBytes <= 0 ? long.MaxValue : Math.Max(1, _retention.MaxBytes / Math.Max(1, engine.ShardCount));
        _slabs = new SlabPool(SlabPool.MaxSlabBytesFor(_retentionBudget), Math.Min(SlabPool.DefaultFreeLimitBytes, _retentionBudget / 8));
        _thread = new Thread(Run) { IsBackground = true, Name = $"fastrelay-shard-{index}" };
    }

    public int Index { get; }

    public int TopicCount => Volatile.Read(ref _topicCount);

    public long Published => Volatile.Read(ref _published);

    public long Delivered => Volatile.Read(ref _delivered);

    public long Duplicates => Volatile.Read(ref _duplicates);

    public long Replayed => Volatile.Read(ref _replayed);

    /// <summary>Dead letters that could not be handed to their topic's shard.</summary>
    public long DeadLettersLost => Volatile.Read(ref _deadLettersLost);

    /// <summary>Publishes refused because their tenant's lane on this shard was full.</summary>
    public long LaneRejections => Volatile.Read(ref _laneRejections);

    /// <summary>Retained events dropped to keep the shard within its share of <c>Retention:MaxBytes</c>.</summary>
    public long RetentionEvicted => Volatile.Read(ref _retentionEvicted);

    /// <summary>Bytes of the slabs holding this shard's retained events (written by the shard thread).</summary>
    public long RetainedBytes => Volatile.Read(ref _retainedBytes);


    private int _topicCount;

    public void Start() => _thread.Start();

    /// <summary>Hands a command to the shard. False when the inbox is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPost(in ShardCommand command)
    {
        if (!_inbox.TryEnqueue(command))
        {
            return false;
        }

        // Dekker-style hand-shake with Idle(): the enqueue's publication (a plain release store) must not be
        // reordered after the read of _parked, or the shard could park on a non-empty inbox. A full fence here
        // pairs with the one in Idle() between writing _parked and re-checking the inbox.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _parked) != 0 && Interlocked.Exchange(ref _parked, 0) != 0)
        {
            _wake.Release();
        }

        return true;
    }

    /// <summary>Hands a command that must not be lost (subscription changes): waits while the inbox is full.</summary>
    public void Post(in ShardCommand command)
    {
        var spin = new SpinWait();
        while (!TryPost(command))
        {
            if (_stopping)
            {
                return;
            }

            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Runs <paramref name="action"/> on the shard thread and waits for it (cold path).</summary>
    public Task InvokeAsync(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new ShardCommand
        {
            Kind = ShardCommandKind.Invoke,
            Action = () =>
            {
                try
                {
                    action();
                    done.SetResult();
                }
                catch (Exception ex)
                {
                    done.SetException(ex);
                }
            },
        });
        return done.Task;
    }

    private void Run()
    {
        var cork = OutboxCork.Install(); // frames queued here wake their writers once per batch, or go out inline
        while (!_stopping)
        {
            long now = Environment.TickCount64;
            if (now >= _nextMaintenanceMs)
            {
                Maintain(now);
                _nextMaintenanceMs = now + MaintenanceIntervalMs;
            }

            int processed = 0;
            while (_inbox.TryDequeue(out var command))
            {
                Route(ref command);
                if (++processed == 4096)
                {
                    break;
                }
            }

            processed += ServeLanes(4096);
            processed += DrainPatternGroups();
            cork.Uncork(inline: _inbox.IsEmpty && _activeLanes.Count == 0);
            if (processed > 0)
            {
                continue;
            }

            Idle();
        }

        OutboxCork.Remove();
        foreach (var stream in _topics.Values)
        {
            stream.Retention.Clear();
            stream.Groups?.ForEach(g => g.Clear());
        }

        _slabs.Dispose(); // every history is cleared: nothing points into a slab any more

        foreach (var homed in _homed)
        {
            homed.Retire();
            homed.Drain(0, 0);
            homed.Group.Clear();
        }

        _kv.Clear();
        foreach (var lane in _lanes.Values)
        {
            while (lane.TryDequeue(out var waiting))
            {
                waiting.Frame?.Release();
            }
        }

        // Release what is still queued so pooled frames go back.
        while (_inbox.TryDequeue(out var left))
        {
            left.Frame?.Release();
        }
    }

    private void Idle()
    {
        for (int i = 0; i < SpinsBeforePark; i++)
        {
            if (!_inbox.IsEmpty || _stopping)
            {
                return;
            }

            Thread.SpinWait(8);
        }

        Volatile.Write(ref _parked, 1);
        Interlocked.MemoryBarrier();
        if (!_inbox.IsEmpty || _stopping)
        {
            if (Interlocked.Exchange(ref _parked, 0) == 0)
            {
                _wake.Wait(); // a producer already released: consume its permit
            }

            return;
        }

        // Bounded wait: a quiet shard still wakes for retention and dedup expiry.
        if (!_wake.Wait(MaintenanceIntervalMs))
        {
            Interlocked.Exchange(ref _parked, 0);
        }
    }

    /// <summary>Publishes backed up behind other work wait in their tenant's lane; everything else runs now.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Route(ref ShardCommand command)
    {
        if (command.Kind == ShardCommandKind.Publish && command.Session is { } publisher)
        {
            publisher.Tenant!.LeaveShard(Index); // out of the shared inbox: the tenant's quota frees up
        }

        if (command.Kind != ShardCommandKind.Publish)
        {
            // Subscriptions, invokes (quiesce, maintenance, queries) apply after every publish that arrived before
            // them: the backed-up lanes are served first, so arrival order holds across kinds.
            if (_activeLanes.Count > 0)
            {
                ServeLanes(int.MaxValue);
            }

            DrainPatternGroups(); // likewise events forwarded to pattern groups homed here
            Process(ref command);
            return;
        }

        if (!_engine.FairScheduling || (_activeLanes.Count == 0 && _inbox.IsEmpty))
        {
            Process(ref command); // one tenant, or nothing waiting: no one to be fair to
            return;
        }

        EnqueueInLane(ref command);
    }

    private void EnqueueInLane(ref ShardCommand command)
    {
        if (!_lanes.TryGetValue(command.Tenant, out var lane))
        {
            lane = new TenantLane(command.Tenant);
            _lanes.Add(command.Tenant, lane);
        }

        if (!lane.TryEnqueue(command, _laneCapacity))
        {
            // This tenant has a full lane on this shard: it is told to back off; other tenants are not.
            _laneRejections++;
            command.Frame?.Release();
            command.Session?.RejectPublish(command.RequestId, (uint)_engine.Options.BackoffRetryAfterMs);
            return;
        }

        if (!lane.Active)
        {
            lane.Active = true;
            _activeLanes.Add(lane);
        }
    }

    /// <summary>
    /// Deficit round robin over tenants with waiting publishes: each turn a tenant may run up to a quantum, so a
    /// flooding tenant cannot hold a shard while another tenant's events wait.
    /// </summary>
    private int ServeLanes(int budget)
    {
        int served = 0;
        while (_activeLanes.Count > 0 && served < budget)
        {
            if (_laneCursor >= _activeLanes.Count)
            {
                _laneCursor = 0;
            }

            var lane = _activeLanes[_laneCursor];
            lane.Deficit += LaneQuantum;
            while (lane.Deficit > 0 && lane.TryDequeue(out var command))
            {
                Publish(ref command);
                lane.Deficit--;
                served++;
            }

            if (lane.Count == 0)
            {
                lane.Deficit = 0;
                lane.Active = false;
                _activeLanes.RemoveAt(_laneCursor); // the next lane moves into this slot
            }
            else
            {
                _laneCursor++;
            }
        }

        return served;
    }

    private void Process(ref ShardCommand command)
    {
        switch (command.Kind)
        {
            case ShardCommandKind.Publish:
                Publish(ref command);
                break;
            case ShardCommandKind.Subscribe:
                Subscribe(ref command);
                break;
            case ShardCommandKind.Unsubscribe:
                Unsubscribe(ref command);
                break;
            case ShardCommandKind.Invoke:
                command.Action!();
                break;
            case ShardCommandKind.SubscribePattern:
                _patterns.Add(command.Pattern!);
                _patternVersion++;
                if (command.Pattern!.ShardDone(subscribe: true))
                {
                    command.Session.SendPatternAck(command.RequestId, command.Pattern.Pattern);
                }

                break;
            case ShardCommandKind.PresenceQuery:
                {
                    var key = command.Topic!;
                    _lookup.TryGetValue(new TopicRef(key.Tenant, key.Utf8, key.Hash), out var stream);
                    command.Session.SendPresenceList(command.RequestId, key, stream);
                    break;
                }

            case ShardCommandKind.GroupJoin:
            case ShardCommandKind.GroupLeave:
            case ShardCommandKind.GroupAck:
                Group(ref command);
                break;
            case ShardCommandKind.PatternGroupWake:
                command.PatternGroup!.Drain(_engine.ClockMs(), (long)_groupOptions.Lease.TotalMilliseconds);
                break;
            case ShardCommandKind.KvGet:
            case ShardCommandKind.KvSet:
            case ShardCommandKind.KvDelete:
                Kv(ref command);
                break;
            case ShardCommandKind.UnsubscribePattern:
                _patterns.Remove(command.Pattern!);
                _patternVersion++;
                if (command.Pattern!.ShardDone(subscribe: false) && command.RequestId != 0)
                {
                    command.Session.SendAck(command.RequestId, 0, 0, EventFlags.None, ordered: true);
                }

                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Publish(ref ShardCommand command)
    {
        var frame = command.Frame!;
        var session = command.Session;
        if (command.HasDedupKey && _dedup.TryGet(command.DedupKey, out ulong firstEpoch, out ulong firstSeq))
        {
            // Seen within the window: same answer as the first time, no second delivery.
            _duplicates++;
            if (command.RequestId != 0)
            {
                session.SendAck(command.RequestId, firstEpoch, firstSeq, EventFlags.Duplicate);
            }

            frame.Release();
            return;
        }

        var stream = GetOrCreate(new TopicRef(command.Tenant, frame.Topic, command.Hash));
        var patternGroups = PatternGroupsOf(stream);
        var reserved = new Reservations(patternGroups.Length);
        if ((stream.Groups is { } groups && GroupsFull(groups)) || (patternGroups.Length > 0 && !TryReserve(patternGroups, ref reserved)))
        {
            // A consumer group cannot take more: the publish is refused before it gets a seq (nothing is lost).
            _laneRejections++;
            frame.Release();
            session?.RejectPublish(command.RequestId, (uint)_engine.Options.BackoffRetryAfterMs, groupFull: true);
            return;
        }

        ulong seq = stream.Next();
        frame.StampSequence(stream.Epoch, seq);
        long now = Environment.TickCount64;
        long retainedBefore = stream.Retention.Bytes;
        stream.Retention.Append(frame, now);
        if (stream.Retention.Bytes != retainedBefore)
        {
            Retained(stream, stream.Retention.Bytes - retainedBefore);
        }

        if (command.HasDedupKey)
        {
            _dedup.Add(command.DedupKey, stream.Epoch, seq, now);
        }

        var subscribers = stream.Subscribers;
        var viaPatterns = PatternRecipientsOf(stream);
        int recipients = subscribers.Length + viaPatterns.Length;
        if (recipients > 0)
        {
            frame.AddRefs(recipients);
            Deliver(frame, subscribers);
            Deliver(frame, viaPatterns);
            _delivered += recipients;
        }

        if (stream.Groups is { } offerTo)
        {
            long leaseMs = (long)_groupOptions.Lease.TotalMilliseconds;
            long clock = _engine.ClockMs();
            foreach (var group in offerTo)
            {
                frame.AddRef();
                group.Offer(frame, stream.Key, stream.Epoch, clock, leaseMs);
            }
        }

        for (int i = 0; i < patternGroups.Length; i++)
        {
            if (reserved.Has(i))
            {
                frame.AddRef();
                patternGroups[i].Forward(frame, stream.Key, stream.Epoch);
            }
        }

        _published++;
        if (command.RequestId != 0)
        {
            // Reported, so a publisher can stop producing for a topic nobody consumes.
            var flags = recipients == 0 && stream.Groups is null && patternGroups.Length == 0 && stream.Retention.MaxEvents == 0 ? EventFlags.NoRecipients : EventFlags.None;
            session.SendAck(command.RequestId, stream.Epoch, seq, flags);
        }

        frame.Release();
    }

    private bool GroupsFull(List<ConsumerGroup> groups)
    {
        foreach (var group in groups)
        {
            if (group.IsFull(_groupOptions.PendingCapacity))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Reserves a slot in every pattern group the event goes to (<paramref name="reserved"/> marks them); false, with
    /// nothing reserved, when one of them is full.
    /// </summary>
    private bool TryReserve(PatternGroup[] patternGroups, ref Reservations reserved)
    {
        int capacity = _groupOptions.PendingCapacity;
        for (int i = 0; i < patternGroups.Length; i++)
        {
            if (!patternGroups[i].TryReserve(capacity, out bool taken))
            {
                for (int j = 0; j < i; j++)
                {
                    if (reserved.Has(j))
                    {
                        patternGroups[j].CancelReservation();
                    }
                }

                return false;
            }

            if (taken)
            {
                reserved.Set(i);
            }
        }

        return true;
    }

    /// <summary>Which of a topic's pattern groups hold a reservation for the event: a bit mask, an array past 64 groups.</summary>
    private struct Reservations(int count)
    {
        private ulong _mask;
        private readonly bool[]? _more = count > 64 ? new bool[count] : null;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly bool Has(int i) => _more is null ? (_mask & (1UL << i)) != 0 : _more[i];

        public void Set(int i)
        {
            if (_more is null)
            {
                _mask |= 1UL << i;
            }
            else
            {
                _more[i] = true;
            }
        }
    }

    /// <summary>The pattern groups a topic's events are forwarded to (cached per topic until the set of groups changes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private PatternGroup[] PatternGroupsOf(TopicStream stream)
    {
        int version = _engine.PatternGroupVersion;
        return stream.PatternGroupVersion == version ? stream.PatternGroups : ComputePatternGroups(stream, version);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private PatternGroup[] ComputePatternGroups(TopicStream stream, int version)
    {
        List<PatternGroup>? matching = null;
        foreach (var group in _engine.PatternGroups)
        {
            if (group.Matches(stream.Key))
            {
                (matching ??= []).Add(group);
            }
        }

        var result = matching?.ToArray() ?? [];
        stream.SetPatternGroups(result, version);
        return result;
    }

    /// <summary>Moves events forwarded to the pattern groups homed here into them; lets go of retired groups once drained.</summary>
    private int DrainPatternGroups()
    {
        var homed = Volatile.Read(ref _homed);
        if (homed.Length == 0)
        {
            return 0;
        }

        int drained = 0;
        long now = 0;
        long leaseMs = (long)_groupOptions.Lease.TotalMilliseconds;
        foreach (var group in homed)
        {
            if (!group.Inbound.IsEmpty)
            {
                drained += group.Drain(now == 0 ? now = _engine.ClockMs() : now, leaseMs);
            }

            if (group.Retired && group.InTransit == 0 && group.Inbound.IsEmpty)
            {
                _engine.ReleaseHome(group);
            }
        }

        return drained;
    }

    /// <summary>Registry lock: the pattern groups this shard is home to.</summary>
    internal void SetHomed(PatternGroup[] homed) => Volatile.Write(ref _homed, homed);

    internal PatternGroup[] Homed => Volatile.Read(ref _homed);

    /// <summary>Membership and acknowledgements of a pattern group homed here.</summary>
    private void PatternGroupCommand(ref ShardCommand command, PatternGroup patternGroup)
    {
        var session = command.Session;
        long now = _engine.ClockMs();
        long leaseMs = (long)_groupOptions.Lease.TotalMilliseconds;
        var group = patternGroup.Group;
        patternGroup.Drain(now, leaseMs);
        switch (command.Kind)
        {
            case ShardCommandKind.GroupJoin:
                // Reply first (in line with events), so the member knows the group before its first event.
                session.SendPatternAck(command.RequestId, patternGroup.Pattern);
                group.Join(session, command.Credits, now, leaseMs);
                break;
            case ShardCommandKind.GroupLeave:
                group.Leave(session, now, leaseMs);
                if (command.RequestId != 0)
                {
                    session.SendAck(command.RequestId, 0, 0, EventFlags.None, ordered: true);
                }

                break;
            default:
                if (command.InProgress
                        ? group.Touch(session, command.Topic!, command.AckSeq, now, leaseMs, out ulong epoch)
                        : group.Ack(session, command.Topic!, command.AckSeq, now, leaseMs, out epoch))
                {
                    if (command.RequestId != 0)
                    {
                        session.SendAck(command.RequestId, epoch, command.AckSeq, EventFlags.None);
                    }
                }
                else if (command.RequestId != 0)
                {
                    session.SendGroupAckUnknown(command.RequestId, command.AckSeq);
                }

                break;
        }

        patternGroup.PublishPending();
        if (command.Kind == ShardCommandKind.GroupLeave)
        {
            _engine.TryForgetPatternGroup(patternGroup);
        }
    }

    /// <summary>Consumer group membership and acknowledgements for a topic owned here.</summary>
    private void Group(ref ShardCommand command)
    {
        if (command.PatternGroup is { } patternGroup)
        {
            PatternGroupCommand(ref command, patternGroup);
            return;
        }

        var key = command.Topic!;
        var session = command.Session;
        long now = _engine.ClockMs();
        long leaseMs = (long)_groupOptions.Lease.TotalMilliseconds;
        var stream = GetOrCreate(new TopicRef(key.Tenant, key.Utf8, key.Hash));
        string groupName = command.GroupName!;
        var group = FindGroup(stream.Groups, groupName);
        switch (command.Kind)
        {
            case ShardCommandKind.GroupJoin:
                if (group is null)
                {
                    group = new ConsumerGroup(command.GroupName!, key.Tenant);
                    (stream.Groups ??= []).Add(group);
                }

                // Reply first (in line with events), so the member knows the group before its first event.
                session.SendSubscribed(FrameType.Ack, command.RequestId, key, stream.Epoch, stream.Seq);
                group.Join(session, command.Credits, now, leaseMs);
                break;
            case ShardCommandKind.GroupLeave:
                group?.Leave(session, now, leaseMs);
                if (group is { MemberCount: 0, PendingCount: 0, InFlightCount: 0 })
                {
                    stream.Groups!.Remove(group);
                    if (stream.Groups!.Count == 0)
                    {
                        stream.Groups = null;
                    }
                }

                if (command.RequestId != 0)
                {
                    session.SendAck(command.RequestId, 0, 0, EventFlags.None, ordered: true);
                }

                break;
            default:
                if (group is null || !(command.InProgress
                        ? group.Touch(session, key, command.AckSeq, now, leaseMs, out _)
                        : group.Ack(session, key, command.AckSeq, now, leaseMs, out _)))
                {
                    if (command.RequestId != 0)
                    {
                        session.SendGroupAckUnknown(command.RequestId, command.AckSeq);
                    }
                }
                else if (command.RequestId != 0)
                {
                    session.SendAck(command.RequestId, stream.Epoch, command.AckSeq, EventFlags.None);
                }

                break;
        }
    }

    /// <summary>The topic's group of that name (a loop, not a capturing lambda: GROUP_ACKs come per event).</summary>
    private static ConsumerGroup? FindGroup(List<ConsumerGroup>? groups, string name)
    {
        if (groups is not null)
        {
            foreach (var group in groups)
            {
                if (group.Name == name)
                {
                    return group;
                }
            }
        }

        return null;
    }

    /// <summary>An event no member completed within its deliveries: published to <c>$dlq.{group}</c>.</summary>
    private void DeadLetter(ConsumerGroup group, Frame frame, TopicKey topic, ulong epoch)
    {
        if (EnvelopeCodec.TryDecode(frame.Memory, out var original, out _) == DecodeError.None)
        {
            var letter = _engine.Frames.Rent();
            var pub = new Envelope(FrameType.Pub).WithTopic(System.Text.Encoding.UTF8.GetBytes($"$dlq.{group.Name}"))
                .WithPayload(original.Payload).WithClientId(original.ClientId).WithPrevEventId(System.Text.Encoding.UTF8.GetBytes($"{topic.Name}@{epoch}:{original.Seq}"));
            if (original.Has(FieldMask.MessageId))
            {
                pub = pub.WithMessageId(original.MessageId);
            }

            if (original.Has(FieldMask.Key))
            {
                pub = pub.WithKey(original.Key);
            }

            EnvelopeCodec.EncodeEventTemplate(letter, in pub, _engine.NowMicros());
            ulong hash = TopicHash.Compute(group.Tenant, letter.Topic);
            var target = _engine.ShardFor(hash);
            var post = new ShardCommand { Kind = ShardCommandKind.Publish, Session = null!, Frame = letter, Hash = hash, Tenant = group.Tenant };
            if (ReferenceEquals(target, this))
            {
                Publish(ref post);
            }
            else if (!target.TryPost(in post))
            {
                letter.Release();
                _deadLettersLost++; // counted and reported in stats: the target shard's inbox was full
            }
        }

        frame.Release();
    }

    /// <summary>KV_GET / KV_SET / KV_DELETE on this shard's keys; replies KV_RESULT or ERROR 409.</summary>
    private void Kv(ref ShardCommand command)
    {
        var carrier = command.Frame!;
        var session = command.Session;
        long now = _engine.ClockMs();
        var bytes = carrier.Memory;
        var keyBytes = bytes[..command.KeyLength];
        var key = new TopicRef(command.Tenant, keyBytes.Span, command.Hash);
        ulong? expected = command.HasExpectedVersion ? command.ExpectedVersion : null;
        var reply = new Envelope(FrameType.KvResult).WithRequestId(command.RequestId).WithTopic(keyBytes);
        switch (command.Kind)
        {
            case ShardCommandKind.GroupJoin:
            case ShardCommandKind.GroupLeave:
            case ShardCommandKind.GroupAck:
                Group(ref command);
                break;
            case ShardCommandKind.KvGet:
                if (_kv.Get(key, now) is { } entry)
                {
                    reply = reply.WithSeq(entry.Version).WithPayload(entry.Value);
                    if (entry.RemainingTtlMs(now) is var ttl and > 0)
                    {
                        reply = reply.WithTtlMs(ttl);
                    }
                }
                else
                {
                    reply = reply.WithSeq(0);
                }

                break;
            case ShardCommandKind.KvSet:
                if (!_kv.TrySet(key, bytes.Span[command.KeyLength..], command.TtlMs, expected, command.IfAbsent, now, out ulong version))
                {
                    reply = Conflict(command.RequestId, keyBytes, version);
                    break;
                }

                reply = reply.WithSeq(version);
                break;
            default:
                if (!_kv.TryDelete(key, expected, now, out ulong current) && expected is not null && current != 0)
                {
                    reply = Conflict(command.RequestId, keyBytes, current);
                    break;
                }

                reply = reply.WithSeq(0);
                break;
        }

        session.SendControl(in reply);
        carrier.Release();
    }

    private static Envelope Conflict(ulong requestId, ReadOnlyMemory<byte> key, ulong currentVersion)
    {
        var error = new Envelope(FrameType.Error).WithRequestId(requestId).WithTopic(key).WithSeq(currentVersion);
        error.ErrorCode = ErrorCode.Conflict;
        error.Reason = s_conflict;
        error.Present |= FieldMask.ErrorCode | FieldMask.Reason;
        return error;
    }

    private static readonly byte[] s_conflict = "version conflict: seq holds the key's current version (0 = absent)"u8.ToArray();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Deliver(Frame frame, ReadOnlySpan<Session> recipients)
    {
        foreach (var subscriber in recipients)
        {
            if (subscriber.Outbox.Enqueue(frame) == EnqueueResult.Overflow)
            {
                subscriber.CloseAsSlowConsumer();
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Session[] PatternRecipientsOf(TopicStream stream)
    {
        if (_patterns.Count == 0)
        {
            return [];
        }

        return stream.PatternVersion == _patternVersion ? stream.PatternRecipients : ComputePatternRecipients(stream);
    }

    /// <summary>Cold: after a pattern or subscriber change. Each session once, and not if it subscribed directly.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Session[] ComputePatternRecipients(TopicStream stream)
    {
        List<Session>? recipients = null;
        foreach (var pattern in _patterns)
        {
            if (pattern.Matches(stream.Key) && !stream.HasSubscriber(pattern.Session) && !(recipients?.Contains(pattern.Session) ?? false))
            {
                (recipients ??= []).Add(pattern.Session);
            }
        }

        var result = recipients?.ToArray() ?? [];
        stream.SetPatternRecipients(result, _patternVersion);
        return result;
    }

    private void Subscribe(ref ShardCommand command)
    {
        var key = command.Topic!;
        var session = command.Session;
        var stream = GetOrCreate(new TopicRef(key.Tenant, key.Utf8, key.Hash));
        if (!command.Resume)
        {
            session.SendSubscribed(FrameType.Ack, command.RequestId, key, stream.Epoch, stream.Seq);
        }
        else if (CanRecover(stream, command.SinceEpoch, command.SinceSeq))
        {
            // Reply, then the missed events, then live ones: all from this thread, so there is no gap and no
            // duplicate at the seam whatever is being published meanwhile.
            session.SendSubscribed(FrameType.Recovered, command.RequestId, key, stream.Epoch, stream.Seq);
            int replayed = stream.Retention.ForEachAfter(command.SinceSeq, _engine.Frames, session, static (frame, s) =>
            {
                var result = s.Outbox.Enqueue(frame);
                if (result == EnqueueResult.Overflow)
                {
                    s.CloseAsSlowConsumer();
                }

                return result is EnqueueResult.Queued or EnqueueResult.Dropped; // closed or over: stop copying
            });
            _replayed += replayed;
        }
        else
        {
            session.SendSubscribed(FrameType.NotRecovered, command.RequestId, key, stream.Epoch, stream.Seq);
        }

        // One join per client id: a reconnecting client whose old connection is not torn down yet is already
        // present (a join is still announced if it comes back with different presence info).
        if (stream.AddSubscriber(session, command.Info) && stream.AnnouncesPresence
            && !stream.HasOtherSessionOf(session, session.ClientIdUtf8, sameInfo: true, command.Info))
        {
            Announce(stream, session, EventFlags.Join, command.Info);
        }
    }

    /// <summary>PRESENCE join/leave to every subscriber of the topic (the joiner included).</summary>
    private void Announce(TopicStream stream, Session who, EventFlags change, byte[]? info)
    {
        var frame = _engine.Frames.Rent();
        var presence = new Envelope(FrameType.Presence).WithTopic(stream.Key.Utf8).WithClientId(who.ClientIdUtf8).WithFlags(change);
        if (info is not null)
        {
            presence = presence.WithPayload(info);
        }

        EnvelopeCodec.Encode(frame, in presence);
        var subscribers = stream.Subscribers;
        frame.AddRefs(subscribers.Length);
        foreach (var subscriber in subscribers)
        {
            // In line with the topic's events: a joiner sees its SUB reply before its own join.
            if (subscriber.Outbox.EnqueueOrdered(frame) == EnqueueResult.Overflow)
            {
                subscriber.CloseAsSlowConsumer();
            }
        }

        frame.Release();
    }

    private void ExpireGroupLeases(long nowMs)
    {
        long leaseMs = (long)_groupOptions.Lease.TotalMilliseconds;
        foreach (var stream in _topics.Values)
        {
            if (stream.Groups is { } groups)
            {
                foreach (var group in groups)
                {
                    group.Expire(nowMs, leaseMs, _groupOptions.MaxDeliveries, _deadLetter);
                }
            }
        }

        foreach (var patternGroup in Volatile.Read(ref _homed))
        {
            if (!patternGroup.Retired)
            {
                patternGroup.Drain(nowMs, leaseMs);
                patternGroup.Group.Expire(nowMs, leaseMs, _groupOptions.MaxDeliveries, _deadLetter);
                patternGroup.PublishPending();
            }
        }
    }

    /// <summary>
    /// Recoverable when the epoch is the topic's and every event after <paramref name="seq"/> is still retained.
    /// </summary>
    private static bool CanRecover(TopicStream stream, ulong epoch, ulong seq)
    {
        if (epoch != stream.Epoch || seq > stream.Seq)
        {
            return false;
        }

        return seq == stream.Seq || (stream.Retention.Count > 0 && stream.Retention.FirstSeq <= seq + 1);
    }

    /// <summary>Accounts for a change of a topic's retained bytes and keeps the shard within its retention budget.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Retained(TopicStream stream, long delta)
    {
        Volatile.Write(ref _retainedBytes, _retainedBytes + delta);
        if (stream.RetainingIndex < 0 && stream.Retention.Count > 0)
        {
            stream.RetainingIndex = _retaining.Count;
            _retaining.Add(stream);
        }

        if (_retainedBytes > _retentionBudget)
        {
            EvictRetention();
        }
    }

    /// <summary>
    /// Over budget: drop the oldest retained event of each retaining topic in turn (a clock sweep over the topics)
    /// until the shard is within budget. Every topic loses history at the same pace, however many there are. Bytes
    /// fall when a topic's oldest slab empties, so the sweep overshoots by about one slab (at most 1/64 of the budget,
    /// <see cref="SlabPool.MaxSlabBytesFor"/>), or by one event larger than that (it has a block of its own).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EvictRetention()
    {
        while (_retainedBytes > _retentionBudget && _retaining.Count > 0)
        {
            if (_retentionSweep >= _retaining.Count)
            {
                _retentionSweep = 0;
            }

            var stream = _retaining[_retentionSweep];
            long before = stream.Retention.Bytes;
            if (stream.Retention.TryDropOldest())
            {
                Volatile.Write(ref _retainedBytes, _retainedBytes + (stream.Retention.Bytes - before));
                Volatile.Write(ref _retentionEvicted, _retentionEvicted + 1);
            }

            if (stream.Retention.Count == 0)
            {
                Untrack(stream); // the last topic moves into this slot: look at it next
            }
            else
            {
                _retentionSweep++;
            }
        }
    }

    private void Untrack(TopicStream stream)
    {
        int index = stream.RetainingIndex;
        var last = _retaining[^1];
        _retaining[index] = last;
        last.RetainingIndex = index;
        _retaining.RemoveAt(_retaining.Count - 1);
        stream.RetainingIndex = -1;
    }

    /// <summary>Ages out retention and dedup entries; forgets topics with no subscribers and no history (new epoch if they return).</summary>
    internal void Maintain(long nowMs)
    {
        ExpireGroupLeases(_engine.ClockMs());
        _dedup.Expire(nowMs);
        _kv.Expire(_engine.ClockMs());
        foreach (var (key, stream) in _topics)
        {
            long retainedBefore = stream.Retention.Bytes;
            if (stream.Retention.Trim(nowMs) > 0)
            {
                Volatile.Write(ref _retainedBytes, _retainedBytes + (stream.Retention.Bytes - retainedBefore));
                if (stream.Retention.Count == 0 && stream.RetainingIndex >= 0)
                {
                    Untrack(stream);
                }
            }

            // A topic a pattern group consumes is kept: its seqs must not restart while the group may hold (topic, seq).
            if (stream.SubscriberCount == 0 && stream.Retention.Count == 0 && stream.Groups is null && PatternGroupsOf(stream).Length == 0)
            {
                _topics.Remove(key);
            }
        }

        Volatile.Write(ref _topicCount, _topics.Count);
    }

    private void Unsubscribe(ref ShardCommand command)
    {
        var key = command.Topic!;
        if (_lookup.TryGetValue(new TopicRef(key.Tenant, key.Utf8, key.Hash), out var stream)
            && stream.RemoveSubscriber(command.Session, out var info)
            && stream.AnnouncesPresence)
        {
            // The client id leaves only with its last connection on the topic. While another remains, its info is
            // announced again if it differs from the departing one's (the last join may have carried that one).
            int remaining = stream.IndexOfOtherSessionOf(command.Session, command.Session.ClientIdUtf8);
            if (remaining < 0)
            {
                Announce(stream, command.Session, EventFlags.Leave, info);
            }
            else if (!stream.Infos[remaining].AsSpan().SequenceEqual(info))
            {
                Announce(stream, stream.Subscribers[remaining], EventFlags.Join, stream.Infos[remaining]);
            }
        }

        if (command.RequestId != 0)
        {
            command.Session.SendAck(command.RequestId, 0, 0, EventFlags.None, ordered: true);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TopicStream GetOrCreate(TopicRef topic)
    {
        if (_lookup.TryGetValue(topic, out var stream))
        {
            return stream;
        }

        return Create(topic);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private TopicStream Create(TopicRef topic)
    {
        var key = new TopicKey(topic.Tenant, topic.Name, topic.Hash);
        var (maxEvents, maxAgeMs) = _retention.Resolve(topic.Name);
        var stream = new TopicStream(key, NextEpoch(), new TopicHistory(_slabs, maxEvents, maxAgeMs), _engine.Options.Presence.AnnouncesJoins(topic.Name));
        _topics.Add(key, stream);
        Volatile.Write(ref _topicCount, _topics.Count);
        return stream;
    }

    /// <summary>Epochs are wall-clock microseconds at creation, strictly increasing per shard: a recreated topic never reuses one.</summary>
    private ulong NextEpoch()
    {
        ulong now = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000);
        _lastEpoch = Math.Max(now, _lastEpoch + 1);
        return _lastEpoch;
    }

    public int KvCount => _kv.Count;

    /// <summary>Shard thread only: a pattern group's member, pending and in-flight counts.</summary>
    internal static (int Members, int Pending, int InFlight) GetGroupState(PatternGroup patternGroup) =>
        (patternGroup.Group.MemberCount, patternGroup.Group.PendingCount + patternGroup.InTransit, patternGroup.Group.InFlightCount);

    /// <summary>Shard thread only: a consumer group's member, pending and in-flight counts.</summary>
    internal (int Members, int Pending, int InFlight)? GetGroupState(TopicKey key, string name)
    {
        if (_topics.TryGetValue(key, out var stream) && stream.Groups?.Find(g => g.Name == name) is { } group)
        {
            return (group.MemberCount, group.PendingCount, group.InFlightCount);
        }

        return null;
    }

    /// <summary>Shard thread only (via <see cref="InvokeAsync"/>): the topic's epoch and seq, if it exists.</summary>
    internal bool TryGetPosition(TopicKey key, out ulong epoch, out ulong seq, out int subscribers)
    {
        Debug.Assert(Thread.CurrentThread == _thread);
        if (_topics.TryGetValue(key, out var stream))
        {
            epoch = stream.Epoch;
            seq = stream.Seq;
            subscribers = stream.SubscriberCount;
            return true;
        }

        epoch = seq = 0;
        subscribers = 0;
        return false;
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Release();
        if (_thread.IsAlive && Thread.CurrentThread != _thread)
        {
            _thread.Join(TimeSpan.FromSeconds(5));
        }

        _wake.Dispose();
    }
}
