using FastRelay.Core.Engine;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>A topic's history kept as copies in slabs: bounds, replay fidelity, slab reuse and byte accounting.</summary>
public sealed class TopicHistoryTests : IDisposable
{
    private const ulong Epoch = 1_700_000_000_000_000;
    private readonly FramePool _frames = new();
    private readonly List<SlabPool> _pools = [];

    public void Dispose()
    {
        foreach (var pool in _pools)
        {
            pool.Dispose();
        }
    }

    private SlabPool Pool(int maxSlabBytes = SlabPool.DefaultMaxSlabBytes, long freeLimitBytes = SlabPool.DefaultFreeLimitBytes)
    {
        var pool = new SlabPool(maxSlabBytes, freeLimitBytes);
        _pools.Add(pool);
        return pool;
    }

    /// <summary>An EVENT frame as a publish makes it: encoded once, then stamped with its seq.</summary>
    private Frame Event(ulong seq, int payloadBytes, string topic = "rooms.lobby", string? key = null, EventFlags flags = EventFlags.None)
    {
        var payload = new byte[payloadBytes];
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(seq * 31 + (ulong)i);
        }

        var pub = new Envelope(FrameType.Pub).WithTopic(topic).WithClientId("client-7").WithMessageId($"m{seq}").WithPayload(payload);
        if (key is not null)
        {
            pub = pub.WithKey(key);
        }

        if (flags != EventFlags.None)
        {
            pub = pub.WithFlags(flags);
        }

        var frame = _frames.Rent();
        EnvelopeCodec.EncodeEventTemplate(frame, in pub, timestampMicros: 1_000_000 + (long)seq);
        frame.StampSequence(Epoch, seq);
        return frame;
    }

    /// <summary>Appends (the history keeps a copy) and keeps the original for comparison.</summary>
    private static void Append(TopicHistory history, Frame frame, long nowMs, List<Frame> originals)
    {
        history.Append(frame, nowMs);
        originals.Add(frame);
    }

    private List<Frame> Replay(TopicHistory history, ulong afterSeq)
    {
        var replayed = new List<Frame>();
        history.ForEachAfter(afterSeq, _frames, replayed, static (frame, list) =>
        {
            list.Add(frame);
            return true;
        });
        return replayed;
    }

    private static void AssertSameFrame(Frame expected, Frame actual)
    {
        Assert.True(expected.Span.SequenceEqual(actual.Span), $"bytes of seq {expected.Seq} differ");
        Assert.Equal(expected.Seq, actual.Seq);
        Assert.Equal(expected.Flags, actual.Flags);
        Assert.Equal(expected.IsEvent, actual.IsEvent);
        Assert.True(expected.Topic.SequenceEqual(actual.Topic));
        Assert.Equal(expected.HasKey, actual.HasKey);
        Assert.True(expected.Key.SequenceEqual(actual.Key));
    }

    private static void ReleaseAll(List<Frame> frames)
    {
        foreach (var frame in frames)
        {
            frame.Release();
        }
    }

    [Fact]
    public void Replay_from_any_seq_yields_exactly_the_later_events_with_identical_bytes_and_metadata()
    {
        // 512-byte slabs: events of 40..600 bytes fill them unevenly, so entries end at every kind of boundary and
        // the largest ones need a block of their own.
        var history = new TopicHistory(Pool(maxSlabBytes: 512), maxEvents: 1000, maxAgeMs: 60_000);
        var originals = new List<Frame>();
        for (ulong seq = 1; seq <= 60; seq++)
        {
            string? key = seq % 3 == 0 ? $"customer-{seq % 7}" : null;
            var flags = seq % 4 == 0 ? EventFlags.Partial : seq % 5 == 0 ? EventFlags.Droppable : EventFlags.None;
            Append(history, Event(seq, payloadBytes: (int)(seq * 37 % 600), key: key, flags: flags), nowMs: 10, originals);
        }

        Assert.True(history.SlabSizes().Length > 10);
        for (ulong after = 0; after <= 61; after++)
        {
            var replayed = Replay(history, after);
            var expected = originals.Where(f => f.Seq > after).ToList();
            Assert.Equal(expected.Count, replayed.Count);
            for (int i = 0; i < expected.Count; i++)
            {
                AssertSameFrame(expected[i], replayed[i]);
            }

            ReleaseAll(replayed);
        }

        ReleaseAll(originals);
    }

    [Fact]
    public void A_replayed_frame_can_be_coalesced_like_the_live_one()
    {
        var history = new TopicHistory(Pool(), maxEvents: 10, maxAgeMs: 60_000);
        var live = new List<Frame>();
        Append(history, Event(1, 20, flags: EventFlags.Partial), 0, live);
        Append(history, Event(2, 30, flags: EventFlags.Partial), 0, live);
        var replayed = Replay(history, 0);

        // The outbox merges partials through the frame's layout (topic slice, IsEvent): the copies must merge alike.
        var fromLive = _frames.Rent();
        var fromReplay = _frames.Rent();
        Assert.True(EnvelopeCodec.TryCoalesce(live[0], live[1], fromLive));
        Assert.True(EnvelopeCodec.TryCoalesce(replayed[0], replayed[1], fromReplay));
        Assert.True(fromLive.Span.SequenceEqual(fromReplay.Span));
        Assert.Equal(2UL, fromReplay.Seq);
        fromLive.Release();
        fromReplay.Release();
        ReleaseAll(replayed);
        ReleaseAll(live);
    }

    [Fact]
    public void The_history_keeps_no_reference_to_the_live_frame()
    {
        var history = new TopicHistory(Pool(), maxEvents: 10, maxAgeMs: 60_000);
        var frame = Event(1, 100);
        history.Append(frame, 0);
        Assert.Equal(1, frame.RefCount);

        // The live frame goes back to its pool and is reused for something else: the history is unaffected.
        var bytes = frame.Span.ToArray();
        frame.Release();
        var other = _frames.Rent();
        other.CopyFrom(new byte[300]);
        var replayed = Replay(history, 0);
        Assert.Single(replayed);
        Assert.True(replayed[0].Span.SequenceEqual(bytes));
        ReleaseAll(replayed);
        other.Release();
    }

    [Fact]
    public void An_event_larger_than_the_largest_slab_gets_a_block_of_its_own_and_is_freed_with_it()
    {
        var pool = Pool(maxSlabBytes: 1024);
        var history = new TopicHistory(pool, maxEvents: 10, maxAgeMs: 60_000);
        var originals = new List<Frame>();
        Append(history, Event(1, 100), 0, originals);
        Append(history, Event(2, 200_000), 0, originals);
        Append(history, Event(3, 100), 0, originals);

        long oversize = 16 + TopicHistory.EntryBytes(originals[1].Length);
        Assert.Equal([512, (int)oversize, 1024], history.SlabSizes());
        Assert.Equal(512 + oversize + 1024, history.Bytes);
        var replayed = Replay(history, 0);
        Assert.Equal(3, replayed.Count);
        for (int i = 0; i < 3; i++)
        {
            AssertSameFrame(originals[i], replayed[i]);
        }

        ReleaseAll(replayed);
        Assert.True(history.TryDropOldest());
        Assert.True(history.TryDropOldest());
        Assert.Equal([1024], history.SlabSizes());
        Assert.Equal(512, pool.FreeBytes); // the first slab is pooled, the block was freed
        Assert.Equal(512 + 1024, pool.HeldBytes);
        ReleaseAll(originals);
    }

    [Fact]
    public void Past_MaxEvents_the_oldest_event_goes()
    {
        var history = new TopicHistory(Pool(maxSlabBytes: 512), maxEvents: 10, maxAgeMs: 60_000);
        var originals = new List<Frame>();
        for (ulong seq = 1; seq <= 25; seq++)
        {
            Append(history, Event(seq, 50), 0, originals);
        }

        Assert.Equal(10, history.Count);
        Assert.Equal(16UL, history.FirstSeq);
        var replayed = Replay(history, 0);
        Assert.Equal(Enumerable.Range(16, 10).Select(s => (ulong)s), replayed.Select(f => f.Seq));
        AssertSameFrame(originals[^1], replayed[^1]);
        ReleaseAll(replayed);
        ReleaseAll(originals);
    }

    [Fact]
    public void MaxEvents_zero_keeps_nothing()
    {
        var pool = Pool();
        var history = new TopicHistory(pool, maxEvents: 0, maxAgeMs: 60_000);
        var frame = Event(1, 50);
        history.Append(frame, 0);
        Assert.Equal(0, history.Count);
        Assert.Equal(0, history.Bytes);
        Assert.Equal(0, pool.HeldBytes);
        frame.Release();
    }

    [Fact]
    public void Trim_drops_the_events_older_than_MaxAge_and_keeps_the_rest()
    {
        var pool = Pool(maxSlabBytes: 512);
        var history = new TopicHistory(pool, maxEvents: 100, maxAgeMs: 250);
        var originals = new List<Frame>();
        for (ulong seq = 1; seq <= 10; seq++)
        {
            Append(history, Event(seq, 120), nowMs: 100 * (long)seq, originals); // added at 100, 200, ..., 1000
        }

        Assert.Equal(0, history.Trim(nowMs: 350)); // the oldest is exactly 250 ms old: kept
        Assert.Equal(7, history.Trim(nowMs: 1050)); // older than 800 goes
        Assert.Equal(3, history.Count);
        Assert.Equal(8UL, history.FirstSeq);
        var replayed = Replay(history, 0);
        Assert.Equal(new ulong[] { 8, 9, 10 }, replayed.Select(f => f.Seq));
        ReleaseAll(replayed);

        Assert.Equal(3, history.Trim(nowMs: 10_000));
        Assert.Equal(0, history.Count);
        Assert.Equal(0, history.Bytes);
        Assert.Equal(0, pool.Outstanding);
        ReleaseAll(originals);
    }

    [Fact]
    public void TryDropOldest_drops_one_event_at_a_time_and_says_when_there_is_none()
    {
        var history = new TopicHistory(Pool(), maxEvents: 100, maxAgeMs: 60_000);
        var originals = new List<Frame>();
        for (ulong seq = 1; seq <= 3; seq++)
        {
            Append(history, Event(seq, 64), 0, originals);
        }

        Assert.True(history.TryDropOldest());
        Assert.Equal(2UL, history.FirstSeq);
        Assert.Equal(2, history.Count);
        Assert.True(history.TryDropOldest());
        Assert.True(history.TryDropOldest());
        Assert.False(history.TryDropOldest());
        Assert.Equal(0, history.Count);
        Assert.Equal(0UL, history.FirstSeq);
        Assert.Empty(Replay(history, 0));
        ReleaseAll(originals);
    }

    [Fact]
    public void Replay_stops_when_the_visitor_says_so()
    {
        var history = new TopicHistory(Pool(), maxEvents: 100, maxAgeMs: 60_000);
        var originals = new List<Frame>();
        for (ulong seq = 1; seq <= 10; seq++)
        {
            Append(history, Event(seq, 64), 0, originals);
        }

        var taken = new List<Frame>();
        int visited = history.ForEachAfter(2, _frames, taken, static (frame, list) =>
        {
            list.Add(frame);
            return list.Count < 4;
        });
        Assert.Equal(4, visited);
        Assert.Equal(new ulong[] { 3, 4, 5, 6 }, taken.Select(f => f.Seq));
        ReleaseAll(taken);
        ReleaseAll(originals);
    }

    [Fact]
    public void Bytes_are_the_slabs_held_exactly_and_a_drained_history_gives_every_slab_back()
    {
        var pool = Pool(maxSlabBytes: 4096);
        var history = new TopicHistory(pool, maxEvents: 1000, maxAgeMs: 60_000);
        var originals = new List<Frame>();
        for (ulong seq = 1; seq <= 200; seq++)
        {
            Append(history, Event(seq, (int)(seq * 13 % 300)), 0, originals);

            var slabs = history.SlabSizes();
            Assert.Equal(slabs.Sum(s => (long)s), history.Bytes);
            Assert.Equal(pool.HeldBytes - pool.FreeBytes, history.Bytes); // one history: it holds all the pool handed out
            long used = originals.Sum(f => (long)TopicHistory.EntryBytes(f.Length)) + (16L * slabs.Length);
            Assert.InRange(used, history.Bytes - slabs[^1] - (slabs.Length * 400L), history.Bytes); // no slab end wasted beyond one entry
        }

        // A quiet topic's first slab is small; a growing one takes larger ones, up to the largest size.
        Assert.Equal(512, history.SlabSizes()[0]);
        Assert.Equal(4096, history.SlabSizes()[^1]);

        // Dropping events gives each slab back as its last entry goes.
        int slabsBefore = history.SlabSizes().Length;
        long bytesBefore = history.Bytes;
        while (history.SlabSizes().Length == slabsBefore)
        {
            Assert.True(history.TryDropOldest());
            Assert.Equal(history.SlabSizes().Sum(s => (long)s), history.Bytes);
        }

        Assert.Equal(bytesBefore - 512, history.Bytes);
        Assert.Equal(512, pool.FreeBytes);

        history.Clear();
        Assert.Equal(0, history.Bytes);
        Assert.Equal(0, history.Count);
        Assert.Equal(0, pool.Outstanding);
        Assert.Equal(pool.HeldBytes, pool.FreeBytes);
        ReleaseAll(originals);
    }

    [Fact]
    public void Free_slabs_beyond_the_limit_go_back_to_the_allocator()
    {
        var pool = Pool(maxSlabBytes: 512, freeLimitBytes: 2048);
        var histories = Enumerable.Range(0, 10).Select(_ => new TopicHistory(pool, maxEvents: 100, maxAgeMs: 60_000)).ToList();
        var originals = new List<Frame>();
        ulong seq = 0;
        foreach (var history in histories)
        {
            Append(history, Event(++seq, 100), 0, originals);
        }

        Assert.Equal(10 * 512, pool.HeldBytes);
        foreach (var history in histories)
        {
            history.Clear();
        }

        Assert.Equal(2048, pool.FreeBytes);
        Assert.Equal(2048, pool.HeldBytes);

        // Reused, not allocated again.
        Append(histories[0], Event(++seq, 100), 0, originals);
        Assert.Equal(2048, pool.HeldBytes);
        Assert.Equal(1536, pool.FreeBytes);
        histories[0].Clear();
        ReleaseAll(originals);
    }

    [Fact]
    public void A_full_history_recycles_its_slabs_without_taking_more_memory()
    {
        var pool = Pool(maxSlabBytes: 1024);
        var history = new TopicHistory(pool, maxEvents: 50, maxAgeMs: 60_000);
        var frame = Event(1, 150);
        long heldAfterWarmUp = 0;
        for (ulong seq = 1; seq <= 20_000; seq++)
        {
            frame.StampSequence(Epoch, seq);
            history.Append(frame, 0);
            if (seq == 1_000)
            {
                heldAfterWarmUp = pool.HeldBytes;
            }
        }

        Assert.Equal(heldAfterWarmUp, pool.HeldBytes);
        Assert.Equal(50, history.Count);
        Assert.Equal(19_951UL, history.FirstSeq);
        var replayed = Replay(history, 19_990);
        Assert.Equal(Enumerable.Range(19_991, 10).Select(s => (ulong)s), replayed.Select(f => f.Seq));
        AssertSameFrame(frame, replayed[^1]);
        ReleaseAll(replayed);
        history.Clear();
        frame.Release();
    }

    [Fact]
    public void The_largest_slab_follows_the_shards_budget()
    {
        Assert.Equal(SlabPool.DefaultMaxSlabBytes, SlabPool.MaxSlabBytesFor(long.MaxValue));
        Assert.Equal(SlabPool.DefaultMaxSlabBytes, SlabPool.MaxSlabBytesFor(128L << 20));
        Assert.Equal(4096, SlabPool.MaxSlabBytesFor(300_000));
        Assert.Equal(SlabPool.MinSlabBytes, SlabPool.MaxSlabBytesFor(1000));
    }
}
