using System.Buffers;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// One shard's part of the key-value store: keys in per-tenant namespaces, owned by the shard their (tenant, key)
/// hash maps to, exactly like topics. Values live in pooled buffers; every write bumps the key's version (for
/// compare-and-set). Expiry is lazy (a read of an expired key finds nothing) and active (an expiry heap drained
/// by the shard's maintenance pass). Shard thread only.
/// </summary>
internal sealed class KvStore
{
    private readonly Dictionary<TopicKey, KvEntry> _entries = new(TopicKeyComparer.Instance);
    private readonly Dictionary<TopicKey, KvEntry>.AlternateLookup<TopicRef> _lookup;
    private readonly PriorityQueue<(KvEntry Entry, ulong Version), long> _expiry = new();
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
            _expiry.Enqueue((current, version), current.ExpiresAtMs);
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

    /// <summary>Removes every entry whose TTL has passed (entries rewritten since they were queued are skipped).</summary>
    public int Expire(long nowMs)
    {
        int removed = 0;
        while (_expiry.TryPeek(out var item, out long at) && at <= nowMs)
        {
            _expiry.Dequeue();
            if (item.Entry.Version == item.Version && item.Entry.IsLive && item.Entry.IsExpired(nowMs))
            {
                Remove(item.Entry);
                removed++;
            }
        }

        return removed;
    }

    public void Clear()
    {
        foreach (var entry in _entries.Values)
        {
            entry.Release();
        }

        _entries.Clear();
        _expiry.Clear();
    }

    private void Remove(KvEntry entry)
    {
        _entries.Remove(entry.Key);
        entry.Release();
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
