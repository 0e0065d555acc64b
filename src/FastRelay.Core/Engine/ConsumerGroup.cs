using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// A consumer group on one topic: each event goes to exactly one live member, in turn, within that member's
/// credits (events it may hold unacknowledged). An event not acknowledged within the lease goes to another member;
/// after <c>MaxDeliveries</c> attempts it is dead-lettered. Waiting events are bounded: a full group makes the
/// topic's publishers back off. Owned by the topic's shard thread.
/// </summary>
internal sealed class ConsumerGroup
{
    private readonly List<GroupMember> _members = [];
    private readonly Queue<Frame> _pending = new();
    private readonly Dictionary<ulong, InFlight> _inFlight = [];
    private int _cursor;

    public ConsumerGroup(string name, TopicKey topic)
    {
        Name = name;
        Topic = topic;
    }

    public string Name { get; }

    public TopicKey Topic { get; }

    public int MemberCount => _members.Count;

    public int PendingCount => _pending.Count;

    public int InFlightCount => _inFlight.Count;

    public long DeadLettered { get; private set; }

    public long Redelivered { get; private set; }

    private sealed class GroupMember(Session session, int credits)
    {
        public Session Session { get; } = session;

        public int Credits { get; set; } = credits;

        public int InFlight { get; set; }
    }

    private struct InFlight
    {
        public Frame Frame;
        public GroupMember Member;
        public long DeadlineMs;
        public int Deliveries;
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

        List<ulong>? orphaned = null;
        foreach (var (seq, entry) in _inFlight)
        {
            if (ReferenceEquals(entry.Member, member))
            {
                (orphaned ??= []).Add(seq);
            }
        }

        if (orphaned is not null)
        {
            foreach (ulong seq in orphaned)
            {
                _inFlight.Remove(seq, out var entry);
                _pending.Enqueue(entry.Frame); // the group keeps its reference
                Redelivered++;
            }
        }

        Dispatch(nowMs, leaseMs);
    }

    /// <summary>Takes over one reference to <paramref name="frame"/>.</summary>
    public void Offer(Frame frame, long nowMs, long leaseMs)
    {
        _pending.Enqueue(frame);
        Dispatch(nowMs, leaseMs);
    }

    /// <summary>A member acknowledged <paramref name="seq"/>: it is done, and its credit is free again.</summary>
    public bool Ack(Session session, ulong seq, long nowMs, long leaseMs)
    {
        if (!_inFlight.TryGetValue(seq, out var entry) || !ReferenceEquals(entry.Member.Session, session))
        {
            return false;
        }

        _inFlight.Remove(seq);
        entry.Member.InFlight--;
        entry.Frame.Release();
        Dispatch(nowMs, leaseMs);
        return true;
    }

    /// <summary>
    /// Lease expiry: events not acknowledged in time go to another member; after <paramref name="maxDeliveries"/>
    /// they are handed to <paramref name="deadLetter"/> (which takes the group's reference).
    /// </summary>
    public void Expire(long nowMs, long leaseMs, int maxDeliveries, Action<ConsumerGroup, Frame> deadLetter)
    {
        List<ulong>? expired = null;
        foreach (var (seq, entry) in _inFlight)
        {
            if (entry.DeadlineMs <= nowMs)
            {
                (expired ??= []).Add(seq);
            }
        }

        if (expired is null)
        {
            return;
        }

        foreach (ulong seq in expired)
        {
            _inFlight.Remove(seq, out var entry);
            entry.Member.InFlight--;
            if (entry.Deliveries >= maxDeliveries)
            {
                DeadLettered++;
                deadLetter(this, entry.Frame);
                continue;
            }

            Redelivered++;
            Assign(entry.Frame, entry.Deliveries, nowMs, leaseMs, avoid: entry.Member);
        }

        Dispatch(nowMs, leaseMs);
    }

    private readonly Dictionary<ulong, int> _deliveriesOf = [];

    private void Dispatch(long nowMs, long leaseMs)
    {
        while (_pending.Count > 0 && _members.Count > 0)
        {
            var member = NextWithCredit(avoid: null);
            if (member is null)
            {
                return; // every member is at its credit limit: the group waits (and fills up: BACKOFF upstream)
            }

            var frame = _pending.Dequeue();
            _deliveriesOf.Remove(frame.Seq, out int deliveries);
            Send(member, frame, deliveries, nowMs, leaseMs);
        }
    }

    private void Assign(Frame frame, int deliveries, long nowMs, long leaseMs, GroupMember avoid)
    {
        var member = NextWithCredit(avoid) ?? NextWithCredit(avoid: null);
        if (member is null)
        {
            _deliveriesOf[frame.Seq] = deliveries;
            _pending.Enqueue(frame);
            return;
        }

        Send(member, frame, deliveries, nowMs, leaseMs);
    }

    private void Send(GroupMember member, Frame frame, int deliveries, long nowMs, long leaseMs)
    {
        member.InFlight++;
        _inFlight[frame.Seq] = new InFlight { Frame = frame, Member = member, DeadlineMs = nowMs + leaseMs, Deliveries = deliveries + 1 };
        frame.AddRef(); // the outbox's reference; the group keeps its own until the ACK
        if (member.Session.Outbox.Enqueue(frame) == EnqueueResult.Overflow)
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
        while (_pending.TryDequeue(out var frame))
        {
            frame.Release();
        }

        foreach (var entry in _inFlight.Values)
        {
            entry.Frame.Release();
        }

        _inFlight.Clear();
        _members.Clear();
    }
}
