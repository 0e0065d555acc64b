using System.Buffers;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// One shard's part of the key-value store: keys in per-tenant namespaces, owned by the shard their (tenant, key)
/// hash maps to, exactly like topics. Values live in pooled buffers; every write bumps the key's version (for
/// compare-and-set). Expiry is lazy (a read of an expired key finds nothing) and active (a hashed timer wheel that
/// the shard's maintenance pass advances). Shard thread only.
/// </summary>
/// <remarks>
/// Why a wheel and not a heap: job leases rewrite the same key with a new TTL every few seconds. A heap of
/// (entry, version) items cannot move an item, so every rewrite left a stale one behind until its old deadline passed
/// (a 5-minute TTL renewed every 3 s kept ~100 items per key); the wheel's entries are linked into their slot
/// intrusively and a rewrite moves them in O(1), so it holds exactly one link per key with a TTL and allocates nothing.
/// </remarks>
internal sealed class KvStore
{
    private readonly Dictionary<TopicKey, KvEntry> _entries = new(TopicKeyComparer.Instance);
    private readonly Dictionary<TopicKey, KvEntry>.AlternateLookup<TopicRef> _lookup;
    private readonly ExpiryWheel _expiry = new();
    private ulong _nextVersion;

    public KvStore() => _lookup = _entries.GetAlternateLookup<TopicRef>();

    public int Count => _entries.Count;

    /// <summary>A live entry, or null when absent or expired.</summary>
    public KvEntry? Get(TopicRef key, long nowMs)
    {
        if (!_lookup.TryGetValue(key, out var entry))
        {
            return null;
        }

        if (entry.IsExpired(nowMs))
        {
            Remove(entry);
            return null;
        }

        return entry;
    }

    /// <summary>
    /// Writes <paramref name="value"/>. <paramref name="expectedVersion"/> (when not null) must equal the current
    /// version (0 = the key must not exist); <paramref name="ifAbsent"/> writes only a missing key. On conflict
    /// returns false with the current version (0 when absent).
    /// </summary>
    public bool TrySet(TopicRef key, ReadOnlySpan<byte> value, uint ttlMs, ulong? expectedVersion, bool ifAbsent, long nowMs, out ulong version)
    {
        var current = Get(key, nowMs);
        ulong currentVersion = current?.Version ?? 0;
        if ((ifAbsent && current is not null) || (expectedVersion is { } expected && expected != currentVersion))
        {
            version = currentVersion;
            return false;
        }

        if (current is null)
        {
            current = new KvEntry(new TopicKey(key.Tenant, key.Name, key.Hash));
            _entries.Add(current.Key, current);
        }

        current.SetValue(value);
        current.Version = version = ++_nextVersion;
        current.ExpiresAtMs = ttlMs == 0 ? long.MaxValue : nowMs + ttlMs;
        if (ttlMs != 0)
        {
            _expiry.Schedule(current, nowMs);
        }
        else
        {
            _expiry.Unschedule(current);
        }

        return true;
    }

    /// <summary>Deletes the key (if <paramref name="expectedVersion"/> matches, when given); false when absent or on conflict.</summary>
    public bool TryDelete(TopicRef key, ulong? expectedVersion, long nowMs, out ulong currentVersion)
    {
        var current = Get(key, nowMs);
        currentVersion = current?.Version ?? 0;
        if (current is null || (expectedVersion is { } expected && expected != currentVersion))
        {
            return false;
        }

        Remove(current);
        return true;
    }

    /// <summary>Removes every entry whose TTL has passed.</summary>
    public int Expire(long nowMs) => _expiry.Advance(nowMs, this);

    /// <summary>Keys scheduled on the expiry wheel (those with a TTL).</summary>
    internal int ScheduledCount => _expiry.Count;

    public void Clear()
    {
        foreach (var entry in _entries.Values)
        {
            entry.Release();
        }

        _entries.Clear();
        _expiry.Clear();
    }

    internal void Remove(KvEntry entry)
    {
        _expiry.Unschedule(entry);
        _entries.Remove(entry.Key);
        entry.Release();
    }
}

/// <summary>
/// A hashed timer wheel of KV entries: <see cref="Slots"/> slots of <see cref="TickMs"/> each, entries linked into
/// the slot of their deadline's tick (a deadline more than a turn away waits in its slot for later turns). Advancing
/// walks the slots of the ticks that passed and removes what has expired. Shard thread only.
/// </summary>
internal sealed class ExpiryWheel
{
    public const int Slots = 512;
    public const long TickMs = 256;

    private readonly KvEntry?[] _heads = new KvEntry?[Slots];
    private long _tick = -1; // the last tick advanced to

    public int Count { get; private set; }

    /// <summary>Links <paramref name="entry"/> at its deadline (moving it when it was linked already).</summary>
    public void Schedule(KvEntry entry, long nowMs)
    {
        Unschedule(entry);
        if (_tick < 0)
        {
            _tick = nowMs / TickMs; // the wheel starts turning with its first entry
        }

        long tick = Math.Max(entry.ExpiresAtMs / TickMs, Math.Max(_tick, nowMs / TickMs));
        int slot = (int)(tick & (Slots - 1));
        entry.WheelSlot = slot;
        entry.WheelPrev = null;
        entry.WheelNext = _heads[slot];
        if (entry.WheelNext is { } next)
        {
            next.WheelPrev = entry;
        }

        _heads[slot] = entry;
        Count++;
    }

    public void Unschedule(KvEntry entry)
    {
        int slot = entry.WheelSlot;
        if (slot < 0)
        {
            return;
        }

        if (entry.WheelPrev is { } prev)
        {
            prev.WheelNext = entry.WheelNext;
        }
        else
        {
            _heads[slot] = entry.WheelNext;
        }

        if (entry.WheelNext is { } next)
        {
            next.WheelPrev = entry.WheelPrev;
        }

        entry.WheelPrev = entry.WheelNext = null;
        entry.WheelSlot = -1;
        Count--;
    }

    public void Clear()
    {
        Array.Clear(_heads);
        Count = 0;
    }

    /// <summary>Removes (through <paramref name="store"/>) every entry of the passed ticks whose deadline is over.</summary>
    public int Advance(long nowMs, KvStore store)
    {
        if (Count == 0)
        {
            _tick = -1; // idle: the next entry starts the wheel at its own time
            return 0;
        }

        long target = nowMs / TickMs;
        // A whole turn or more since the last advance, or a clock that went back: each slot once.
        long first = target < _tick ? target - Slots + 1 : Math.Max(_tick, target - Slots + 1);
        int removed = 0;
        for (long tick = first; tick <= target; tick++)
        {
            var entry = _heads[(int)(tick & (Slots - 1))];
            while (entry is not null)
            {
                var next = entry.WheelNext;
                if (entry.IsExpired(nowMs))
                {
                    store.Remove(entry); // unlinks it
                    removed++;
                }

                entry = next;
            }
        }

        _tick = target;
        return removed;
    }
}

/// <summary>One key's value (in a pooled buffer), version and expiry.</summary>
internal sealed class KvEntry
{
    private byte[]? _buffer;
    private int _length;

    public KvEntry(TopicKey key) => Key = key;

    public TopicKey Key { get; }

    public ulong Version { get; set; }

    public long ExpiresAtMs { get; set; } = long.MaxValue;

    /// <summary>The expiry wheel's slot this entry is linked into, or -1.</summary>
    public int WheelSlot { get; set; } = -1;

    public KvEntry? WheelPrev { get; set; }

    public KvEntry? WheelNext { get; set; }

    public bool IsLive => _buffer is not null;

    public ReadOnlyMemory<byte> Value => new(_buffer, 0, _length);

    public bool IsExpired(long nowMs) => nowMs >= ExpiresAtMs;

    /// <summary>Remaining TTL in ms (0 = none).</summary>
    public uint RemainingTtlMs(long nowMs) => ExpiresAtMs == long.MaxValue ? 0 : (uint)Math.Clamp(ExpiresAtMs - nowMs, 1, uint.MaxValue);

    public void SetValue(ReadOnlySpan<byte> value)
    {
        if (_buffer is null || _buffer.Length < value.Length)
        {
            if (_buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(16, value.Length));
        }

        value.CopyTo(_buffer);
        _length = value.Length;
    }

    public void Release()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
            _length = 0;
        }
    }
}
