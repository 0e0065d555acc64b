using System.Diagnostics;
using System.Numerics;
using FastRelay.Core.Tenancy;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// A consumer group on a pattern (<c>jobs.*</c>) in one tenant. Matching topics live on any shard, so the group's
/// state (members, credits, pending, in flight by (topic, seq)) lives on one <see cref="Home"/> shard; the shards that
/// own matching topics forward each sequenced event to it through <see cref="Inbound"/>.
/// </summary>
/// <remarks>
/// Backpressure is exact, not sampled: before a shard sequences an event for a matching topic it reserves a slot
/// (<see cref="TryReserve"/>: one interlocked increment), so events in transit plus events pending on the home never
/// pass the capacity, and <see cref="Inbound"/> (sized to that capacity) can never be full when the event is
/// forwarded. A refused reservation becomes BACKOFF to the publisher before anything is sequenced: nothing accepted is
/// lost. Per-topic order holds because one shard forwards a topic's events, in seq order, into one FIFO ring.
/// </remarks>
internal sealed class PatternGroup
{
    private int _inTransit;
    private int _pending;
    private int _wakePosted;
    private volatile bool _retired;

    public PatternGroup(int tenant, TopicPattern pattern, string name, Shard home, int pendingCapacity)
    {
        Tenant = tenant;
        Pattern = pattern;
        Name = name;
        Home = home;
        Group = new ConsumerGroup(name, tenant);
        Inbound = new MpscRing<Forwarded>((int)Math.Max(2, BitOperations.RoundUpToPowerOf2((uint)pendingCapacity)));
    }

    public int Tenant { get; }

    public TopicPattern Pattern { get; }

    public string Name { get; }

    /// <summary>The shard whose thread owns <see cref="Group"/>: a stable hash of (tenant, pattern, name).</summary>
    public Shard Home { get; }

    /// <summary>Members, credits, pending and in-flight events; home shard thread only.</summary>
    public ConsumerGroup Group { get; }

    /// <summary>Events forwarded by the shards owning matching topics, waiting for the home shard.</summary>
    public MpscRing<Forwarded> Inbound { get; }

    /// <summary>Sessions that joined and have not left yet (engine registry lock).</summary>
    internal int Holders { get; set; }

    /// <summary>Forgotten by the registry; the home drains what is still in transit and drops it.</summary>
    public bool Retired => _retired;

    /// <summary>Events reserved and not yet in the home's pending queue.</summary>
    public int InTransit => Volatile.Read(ref _inTransit);

    /// <summary>One sequenced event on its way to the home shard.</summary>
    internal struct Forwarded
    {
        public Frame Frame;
        public TopicKey Topic;
        public ulong Epoch;
    }

    public bool Matches(TopicKey topic) => topic.Tenant == Tenant && Pattern.Matches(topic.Utf8);

    /// <summary>
    /// Publishing shard, before sequencing: room for one more event? False when the group is full (BACKOFF).
    /// A retired group reserves nothing and reports true (it takes no events).
    /// </summary>
    public bool TryReserve(int capacity, out bool reserved)
    {
        if (Interlocked.Increment(ref _inTransit) + Volatile.Read(ref _pending) > capacity || _retired)
        {
            Interlocked.Decrement(ref _inTransit);
            reserved = false;
            return _retired;
        }

        reserved = true;
        return true;
    }

    public void CancelReservation() => Interlocked.Decrement(ref _inTransit);

    /// <summary>Publishing shard: hands over one reference to <paramref name="frame"/> (a slot was reserved) and wakes the home.</summary>
    public void Forward(Frame frame, TopicKey topic, ulong epoch)
    {
        bool queued = Inbound.TryEnqueue(new Forwarded { Frame = frame, Topic = topic, Epoch = epoch });
        Debug.Assert(queued, "a reserved slot always fits: the ring holds the whole capacity");
        if (Interlocked.Exchange(ref _wakePosted, 1) == 0
            && !Home.TryPost(new ShardCommand { Kind = ShardCommandKind.PatternGroupWake, Session = null!, PatternGroup = this }))
        {
            // The home's inbox is full, so it is busy: it drains every group it homes on each pass of its loop.
            Volatile.Write(ref _wakePosted, 0);
        }
    }

    /// <summary>Home shard: moves forwarded events into the group (or drops them once retired). Returns how many.</summary>
    public int Drain(long nowMs, long leaseMs)
    {
        Volatile.Write(ref _wakePosted, 0);
        Interlocked.MemoryBarrier();
        int drained = 0;
        while (Inbound.TryDequeue(out var e))
        {
            if (_retired)
            {
                e.Frame.Release();
            }
            else
            {
                Group.Offer(e.Frame, e.Topic, e.Epoch, nowMs, leaseMs);
                Volatile.Write(ref _pending, Group.PendingCount); // counted as pending before it stops being in transit
            }

            Interlocked.Decrement(ref _inTransit);
            drained++;
        }

        return drained;
    }

    /// <summary>Home shard, after any change to the group: publishes the pending count the publishers' reservations see.</summary>
    public void PublishPending() => Volatile.Write(ref _pending, Group.PendingCount);

    /// <summary>Registry lock, home shard: no more reservations succeed.</summary>
    internal void Retire()
    {
        _retired = true;
        Interlocked.MemoryBarrier();
    }
}
