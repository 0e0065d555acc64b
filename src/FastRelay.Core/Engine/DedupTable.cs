namespace FastRelay.Core.Engine;

/// <summary>
/// Remembers (tenant, topic, client_id, message_id) → (epoch, seq) for the dedup window so a repeated publish is
/// answered with the original position instead of a second delivery. Keys are 128-bit hashes computed by the
/// publisher's read loop; entries expire in insertion order, and the table is bounded: when full, the oldest
/// entry goes early (the window shrinks under extreme load rather than memory growing). Shard thread only.
/// </summary>
internal sealed class DedupTable
{
    private readonly Dictionary<UInt128, Position> _entries;
    private readonly Expiry[] _fifo;
    private readonly long _windowMs;
    private int _head;
    private int _count;

    private readonly record struct Position(ulong Epoch, ulong Seq);

    private struct Expiry
    {
        public UInt128 Key;
        public long ExpiresAtMs;
    }

    public DedupTable(int capacity, long windowMs)
    {
        _entries = new Dictionary<UInt128, Position>(Math.Min(capacity, 16_384));
        _fifo = new Expiry[capacity];
        _windowMs = windowMs;
    }

    public int Count => _count;

    /// <summary>Entries evicted before their window ended because the table was full.</summary>
    public long EvictedEarly { get; private set; }

    public bool TryGet(UInt128 key, out ulong epoch, out ulong seq)
    {
        if (_entries.TryGetValue(key, out var position))
        {
            epoch = position.Epoch;
            seq = position.Seq;
            return true;
        }

        epoch = seq = 0;
        return false;
    }

    public void Add(UInt128 key, ulong epoch, ulong seq, long nowMs)
    {
        if (_fifo.Length == 0)
        {
            return;
        }

        if (_count == _fifo.Length)
        {
            RemoveOldest();
            EvictedEarly++;
        }

        _entries[key] = new Position(epoch, seq);
        _fifo[(_head + _count) % _fifo.Length] = new Expiry { Key = key, ExpiresAtMs = nowMs + _windowMs };
        _count++;
    }

    /// <summary>Forgets entries whose window has passed.</summary>
    public void Expire(long nowMs)
    {
        while (_count > 0 && _fifo[_head].ExpiresAtMs <= nowMs)
        {
            RemoveOldest();
        }
    }

    private void RemoveOldest()
    {
        ref var oldest = ref _fifo[_head];
        _entries.Remove(oldest.Key);
        oldest = default;
        _head = (_head + 1) % _fifo.Length;
        _count--;
    }
}
