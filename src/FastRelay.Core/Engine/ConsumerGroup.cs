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
internal sealed class ConsumerGroup
{
    private readonly List<GroupMember> _members = [];
    private readonly Queue<GroupEvent> _pending = new();
    private readonly Dictionary<(TopicKey Topic, ulong Seq), InFlight> _inFlight = [];
    private int _cursor;

    public ConsumerGroup(string name, int tenant)
    {
        Name = name;
        Tenant = tenant;
    }

    public string Name { get; }

    public int Tenant { get; }

    public int MemberCount => _members.Count;

    public int PendingCount => _pending.Count;

    public int InFlightCount => _inFlight.Count;

    /// <summary>No member and nothing held: the group can be forgotten.</summary>
    public bool IsEmpty => _members.Count == 0 && _pending.Count == 0 && _inFlight.Count == 0;

    public long DeadLettered { get; private set; }

    public long Redelivered { get; private set; }

    private sealed class GroupMember(Session session, int credits)
    {
        public Session Session { get; } = session;

        public int Credits { get; set; } = credits;

        public int InFlight { get; set; }
    }

    /// <summary>One event the group holds: the frame (one reference), its concrete topic and epoch, deliveries so far.</summary>
    private struct GroupEvent
    {
        public Frame Frame;
        public TopicKey Topic;
        public ulong Epoch;
        public int Deliveries;
    }

    private struct InFlight
    {
        public GroupEvent Event;
        public GroupMember Member;
        public long DeadlineMs;
    }

    public bool IsFull(int capacity) => _pending.Count >= capacity;

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
        _pending.Enqueue(new GroupEvent { Frame = frame, Topic = topic, Epoch = epoch });
        Dispatch(nowMs, leaseMs);
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
        entry.Event.Frame.Release();
        Dispatch(nowMs, leaseMs);
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
            var member = NextWithCredit(avoid: null);
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

    private void Send(GroupMember member, GroupEvent e, long nowMs, long leaseMs)
    {
        member.InFlight++;
        e.Deliveries++;
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
        _members.Clear();
    }
}
