using System.Text;
using FastRelay.Core.Engine;

namespace FastRelay.Core.Tests.Engine;

/// <summary>The KV store's expiry wheel, driven directly with a hand-held clock.</summary>
public sealed class ExpiryWheelTests
{
    private static bool Set(KvStore store, string key, uint ttlMs, long nowMs)
    {
        byte[] name = Encoding.UTF8.GetBytes(key);
        return store.TrySet(new TopicRef(0, name, TopicHash.Compute(0, name)), "v"u8, ttlMs, null, false, nowMs, out _);
    }

    private static bool Exists(KvStore store, string key, long nowMs)
    {
        byte[] name = Encoding.UTF8.GetBytes(key);
        return store.Get(new TopicRef(0, name, TopicHash.Compute(0, name)), nowMs) is not null;
    }

    [Fact]
    public void Rewriting_a_key_moves_its_deadline_instead_of_piling_up_entries()
    {
        var store = new KvStore();
        long now = 5_000;
        for (int i = 0; i < 1_000; i++)
        {
            now += 3_000;
            Assert.True(Set(store, "lease", ttlMs: 10_000, now));
            Assert.Equal(0, store.Expire(now));
        }

        Assert.Equal(1, store.ScheduledCount);
        Assert.Equal(1, store.Count);
        Assert.Equal(0, store.Expire(now + 9_000)); // still within the last TTL
        Assert.Equal(1, store.Expire(now + 10_000));
        Assert.Equal(0, store.Count);
        Assert.Equal(0, store.ScheduledCount);
    }

    [Fact]
    public void A_deadline_more_than_a_turn_away_waits_through_the_turns_of_its_slot()
    {
        var store = new KvStore();
        long turn = ExpiryWheel.Slots * ExpiryWheel.TickMs;
        long now = 1_000;
        Assert.True(Set(store, "far", ttlMs: (uint)(3 * turn + 500), now));
        for (long t = now; t < now + (3 * turn); t += 1_000)
        {
            Assert.Equal(0, store.Expire(t)); // walked past its slot three times: not due yet
        }

        Assert.True(Exists(store, "far", now + (3 * turn)));
        Assert.Equal(1, store.Expire(now + (3 * turn) + 500 + ExpiryWheel.TickMs));
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void After_a_long_pause_every_due_key_goes_in_one_advance_and_the_rest_stay()
    {
        var store = new KvStore();
        for (int i = 0; i < 100; i++)
        {
            Assert.True(Set(store, $"k{i}", ttlMs: (uint)(1_000 + (i * 997)), nowMs: 0));
        }

        Assert.True(Set(store, "forever", ttlMs: 0, nowMs: 0));
        long later = ExpiryWheel.Slots * ExpiryWheel.TickMs * 5L; // five turns without maintenance
        Assert.Equal(100, store.Expire(later));
        Assert.Equal(1, store.Count);
        Assert.Equal(0, store.ScheduledCount);
    }

    [Fact]
    public void Dropping_the_ttl_or_deleting_the_key_takes_it_off_the_wheel()
    {
        var store = new KvStore();
        Assert.True(Set(store, "a", ttlMs: 1_000, nowMs: 0));
        Assert.True(Set(store, "b", ttlMs: 1_000, nowMs: 0));
        Assert.Equal(2, store.ScheduledCount);

        Assert.True(Set(store, "a", ttlMs: 0, nowMs: 10)); // no TTL any more
        byte[] b = "b"u8.ToArray();
        Assert.True(store.TryDelete(new TopicRef(0, b, TopicHash.Compute(0, b)), null, 10, out _));
        Assert.Equal(0, store.ScheduledCount);
        Assert.Equal(0, store.Expire(60_000));
        Assert.True(Exists(store, "a", 60_000));
    }
}
