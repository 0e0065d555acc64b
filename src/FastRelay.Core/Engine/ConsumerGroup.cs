using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// A consumer group: each event goes to exactly one live member, in turn, within that member's credits (events it
/// may hold unacknowledged). An event not acknowledged within the lease goes to another member; after
/// <c>MaxDeliveries</c> attempts it is dead-lettered. Waiting events are bounded: a full group makes its publishers
/// back off. Events are identified by (topic, seq), so one group can consume one topic (a topic group, owned by the
/// topic's shard) or every topic matching a pattern (a <see cref="PatternGroup"/>, owned by its home shard).
/// Touched only by its owner shard's thread.
/// </summary>
/// <remarks>
/// Events with an ordering key (field 21) are handed out one at a time per key, in the order they reached the group:
/// a key's current event sits in the ready queue or in flight like any other event, and the key's later events wait
/// in the key's own FIFO until it is acknowledged or dead-lettered. A redelivery (lease expiry, member leaving) moves
/// the current event only, so it stays the key's current one and order holds. Other keys and keyless events never
/// wait behind a busy key. Keys are identified by a seeded 64-bit hash of their bytes, compared exactly against the
/// key inside the current event's frame (no copy); the per-key state is pooled.
/// </remarks>
internal sealed class ConsumerGroup
{
    private readonly List<GroupMember> _members = [];
    private readonly Queue<GroupEvent> _pending = new();
    private readonly Dictionary<(TopicKey Topic, ulong Seq), InFlight> _inFlight = [];
    private readonly Dictionary<ulong, OrderingKey> _keys = [];
    private readonly Stack<OrderingKey> _freeKeys = new();
    private int _waiting;
    private int _cursor;

    /// <summary>Per-process seed: keys are client-chosen, so their hashes must not be predictable (hash flooding).</summary>
    private static readonly long s_keySeed = Random.Shared.NextInt64();

    /// <summary>Pooled per-key states kept for reuse; more than this many idle ones are left to the GC.</summary>
    private const int MaxFreeKeys = 1024;

    public ConsumerGroup(string name, int tenant)
    {
        Name = name;
        Tenant = tenant;
    }

    public string Name { get; }

    public int Tenant { get; }

    public int MemberCount => _members.Count;

    /// <summary>Events waiting: ready for a member with credit, or waiting behind their key's current event.</summary>
    public int PendingCount => _pending.Count + _waiting;

    /// <summary>Keys with an event in the group (ready, in flight or waiting).</summary>
    public int KeyCount => _keys.Count;

    public int InFlightCount => _inFlight.Count;

    /// <summary>No member and nothing held: the group can be forgotten.</summary>
    public bool IsEmpty => _members.Count == 0 && PendingCount == 0 && _inFlight.Count == 0;

    public long DeadLettered { get; private set; }

    public long Redelivered { get; private set; }

    private sealed class GroupMember(Session session, int credits)
    {
        public Session Session { get; } = session;

        public int Credits { get; set; } = credits;

        public int InFlight { get; set; }

        /// <summary>Left the group: no longer a candidate for key affinity.</summary>
        public bool Left { get; set; }
    }

    /// <summary>
    /// One ordering key with an event in the group. <see cref="Current"/> is the key's one event that is ready or in
    /// flight (its frame's key bytes are the key's identity); <see cref="Waiting"/> holds the later ones in order.
    /// </summary>
    private sealed class OrderingKey
    {
        public ulong Hash;
        public Frame Current = null!;
        public readonly Queue<GroupEvent> Waiting = new();

        /// <summary>Another key with the same 64-bit hash (exact comparison tells them apart).</summary>
        public OrderingKey? NextSameHash;

        /// <summary>The member that got the key's last event: preferred for the next one while it has credit.</summary>
        public GroupMember? LastMember;
    }

    /// <summary>One event the group holds: the frame (one reference), its concrete topic and epoch, deliveries so far.</summary>
    private struct GroupEvent
    {
        public Frame Frame;
        public TopicKey Topic;
        public ulong Epoch;
        public int Deliveries;
        public OrderingKey? Key;
    }

    private struct InFlight
    {
        public GroupEvent Event;
        public GroupMember Member;
        public long DeadlineMs;
    }

    public bool IsFull(int capacity) => PendingCount >= capacity;

    public bool HasMember(Session session) => _members.Exists(m => ReferenceEquals(m.Session, session));

    public void Join(Session session, int credits, long nowMs, long leaseMs)
    {
        var member = _members.Find(m => ReferenceEquals(m.Session, session));
        if (member is null)
        {
            _members.Add(new GroupMember(session, credits));
        }
        else
        {
            member.Credits = credits; // re-join: new credit budget
        }

        Dispatch(nowMs, leaseMs);
    }

    /// <summary>Removes the member; what it held unacknowledged goes back to the others.</summary>
    public void Leave(Session session, long nowMs, long leaseMs)
    {
        int index = _members.FindIndex(m => ReferenceEquals(m.Session, session));
        if (index < 0)
        {
            return;
        }

        var member = _members[index];
        member.Left = true;
        _members.RemoveAt(index);
        if (_cursor > index)
        {
            _cursor--;
        }

        List<(TopicKey, ulong)>? orphaned = null;
        foreach (var (key, entry) in _inFlight)
        {
            if (ReferenceEquals(entry.Member, member))
            {
                (orphaned ??= []).Add(key);
            }
        }

        if (orphaned is not null)
        {
            foreach (var key in orphaned)
            {
                _inFlight.Remove(key, out var entry);
                _pending.Enqueue(entry.Event); // the group keeps its reference
                Redelivered++;
            }
        }

        Dispatch(nowMs, leaseMs);
    }

    /// <summary>Takes over one reference to <paramref name="frame"/>, an event of <paramref name="topic"/>.</summary>
    public void Offer(Frame frame, TopicKey topic, ulong epoch, long nowMs, long leaseMs)
    {
        var e = new GroupEvent { Frame = frame, Topic = topic, Epoch = epoch };
        if (frame.HasKey && !TryTakeKey(ref e))
        {
            return; // waits behind the key's current event
        }

        _pending.Enqueue(e);
        Dispatch(nowMs, leaseMs);
    }

    /// <summary>
    /// Attaches <paramref name="e"/> to its key. True when it is the key's current event (ready now); false when the
    /// key already has one, and <paramref name="e"/> joined the key's waiting FIFO.
    /// </summary>
    private bool TryTakeKey(ref GroupEvent e)
    {
        var keyBytes = e.Frame.Key;
        ulong hash = XxHash3.HashToUInt64(keyBytes, s_keySeed);
        ref var head = ref CollectionsMarshal.GetValueRefOrAddDefault(_keys, hash, out _);
        for (var key = head; key is not null; key = key.NextSameHash)
        {
            if (key.Current.Key.SequenceEqual(keyBytes))
            {
                e.Key = key;
                key.Waiting.Enqueue(e);
                _waiting++;
                return false;
            }
        }

        var added = _freeKeys.Count > 0 ? _freeKeys.Pop() : new OrderingKey();
        added.Hash = hash;
        added.Current = e.Frame;
        added.NextSameHash = head;
        head = added;
        e.Key = added;
        return true;
    }

    /// <summary>
    /// The key's current event is done (acknowledged or dead-lettered): its next waiting event becomes ready, or the
    /// key is forgotten. Reads no frame bytes, so the finished frame may already be released.
    /// </summary>
    private void AdvanceKey(OrderingKey key)
    {
        if (key.Waiting.TryDequeue(out var next))
        {
            _waiting--;
            key.Current = next.Frame;
            _pending.Enqueue(next);
            return;
        }

        ref var head = ref CollectionsMarshal.GetValueRefOrNullRef(_keys, key.Hash);
        if (ReferenceEquals(head, key))
        {
            if (key.NextSameHash is null)
            {
                _keys.Remove(key.Hash);
            }
            else
            {
                head = key.NextSameHash;
            }
        }
        else
        {
            var previous = head;
            while (!ReferenceEquals(previous.NextSameHash, key))
            {
                previous = previous.NextSameHash!;
            }

            previous.NextSameHash = key.NextSameHash;
        }

        key.Current = null!;
        key.NextSameHash = null;
        key.LastMember = null;
        if (_freeKeys.Count < MaxFreeKeys)
        {
            _freeKeys.Push(key);
        }
    }

    /// <summary>
    /// A member acknowledged (<paramref name="topic"/>, <paramref name="seq"/>): it is done, and its credit is free
    /// again. <paramref name="epoch"/> gets the event's epoch.
    /// </summary>
    public bool Ack(Session session, TopicKey topic, ulong seq, long nowMs, long leaseMs, out ulong epoch)
    {
        epoch = 0;
        if (!_inFlight.TryGetValue((topic, seq), out var entry) || !ReferenceEquals(entry.Member.Session, session))
        {
            return false;
        }

        _inFlight.Remove((topic, seq));
        entry.Member.InFlight--;
        epoch = entry.Event.Epoch;
        if (entry.Event.Key is { } key)
        {
            AdvanceKey(key);
        }

        entry.Event.Frame.Release();
        Dispatch(nowMs, leaseMs);
        return true;
    }

    /// <summary>
    /// The member holding (<paramref name="topic"/>, <paramref name="seq"/>) is still working on it: its lease starts
    /// again from <paramref name="nowMs"/>. False when this member does not hold the event (as for an ACK).
    /// </summary>
    public bool Touch(Session session, TopicKey topic, ulong seq, long nowMs, long leaseMs, out ulong epoch)
    {
        ref var entry = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrNullRef(_inFlight, (topic, seq));
        if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref entry) || !ReferenceEquals(entry.Member.Session, session))
        {
            epoch = 0;
            return false;
        }

        entry.DeadlineMs = nowMs + leaseMs;
        epoch = entry.Event.Epoch;
        return true;
    }

    /// <summary>
    /// Lease expiry: events not acknowledged in time go to another member; after <paramref name="maxDeliveries"/>
    /// they are handed to <paramref name="deadLetter"/> (which takes the group's reference).
    /// </summary>
    public void Expire(long nowMs, long leaseMs, int maxDeliveries, Action<ConsumerGroup, Frame, TopicKey, ulong> deadLetter)
    {
        List<(TopicKey, ulong)>? expired = null;
        foreach (var (key, entry) in _inFlight)
        {
            if (entry.DeadlineMs <= nowMs)
            {
                (expired ??= []).Add(key);
            }
        }

        if (expired is null)
        {
            return;
        }

        foreach (var key in expired)
        {
            _inFlight.Remove(key, out var entry);
            entry.Member.InFlight--;
            if (entry.Event.Deliveries >= maxDeliveries)
            {
                DeadLettered++;
                if (entry.Event.Key is { } orderingKey)
                {
                    AdvanceKey(orderingKey); // a dead letter ends the key's current event like an ACK
                }

                deadLetter(this, entry.Event.Frame, entry.Event.Topic, entry.Event.Epoch);
                continue;
            }

            Redelivered++;
            Assign(entry.Event, nowMs, leaseMs, avoid: entry.Member);
        }

        Dispatch(nowMs, leaseMs);
    }

    private void Dispatch(long nowMs, long leaseMs)
    {
        while (_pending.Count > 0 && _members.Count > 0)
        {
            var member = PreferredFor(_pending.Peek()) ?? NextWithCredit(avoid: null);
            if (member is null)
            {
                return; // every member is at its credit limit: the group waits (and fills up: BACKOFF upstream)
            }

            Send(member, _pending.Dequeue(), nowMs, leaseMs);
        }
    }

    private void Assign(GroupEvent e, long nowMs, long leaseMs, GroupMember avoid)
    {
        var member = NextWithCredit(avoid) ?? NextWithCredit(avoid: null);
        if (member is null)
        {
            _pending.Enqueue(e);
            return;
        }

        Send(member, e, nowMs, leaseMs);
    }

    /// <summary>Key affinity: the member that had the key's previous event, while it is in the group with credit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static GroupMember? PreferredFor(in GroupEvent e) =>
        e.Key?.LastMember is { Left: false } last && last.InFlight < last.Credits ? last : null;

    private void Send(GroupMember member, GroupEvent e, long nowMs, long leaseMs)
    {
        member.InFlight++;
        e.Deliveries++;
        if (e.Key is { } key)
        {
            key.LastMember = member;
        }

        _inFlight[(e.Topic, e.Frame.Seq)] = new InFlight { Event = e, Member = member, DeadlineMs = nowMs + leaseMs };
        e.Frame.AddRef(); // the outbox's reference; the group keeps its own until the ACK
        if (member.Session.Outbox.Enqueue(e.Frame) == EnqueueResult.Overflow)
        {
            member.Session.CloseAsSlowConsumer();
        }
    }

    private GroupMember? NextWithCredit(GroupMember? avoid)
    {
        for (int i = 0; i < _members.Count; i++)
        {
            _cursor = (_cursor + 1) % _members.Count;
            var member = _members[_cursor];
            if (member.InFlight < member.Credits && !ReferenceEquals(member, avoid))
            {
                return member;
            }
        }

        return null;
    }

    /// <summary>Releases every held frame (shutdown).</summary>
    public void Clear()
    {
        while (_pending.TryDequeue(out var e))
        {
            e.Frame.Release();
        }

        foreach (var entry in _inFlight.Values)
        {
            entry.Event.Frame.Release();
        }

        _inFlight.Clear();
        foreach (var head in _keys.Values)
        {
            for (var key = head; key is not null; key = key.NextSameHash)
            {
                while (key.Waiting.TryDequeue(out var e))
                {
                    e.Frame.Release();
                }
            }
        }

        _keys.Clear();
        _freeKeys.Clear();
        _waiting = 0;
        _members.Clear();
    }
}
