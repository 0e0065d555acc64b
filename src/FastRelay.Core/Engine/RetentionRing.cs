using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// A topic's recent events, oldest first, bounded by count and age: the frames themselves (one reference each),
/// so a replay re-sends the exact bytes subscribers saw live. Owned by the topic's shard thread.
/// Grows from a small array up to its count limit, so quiet topics stay small.
/// </summary>
internal sealed class RetentionRing
{
    private Entry[] _entries = [];
    private int _head;
    private int _count;

    private struct Entry
    {
        public Frame Frame;
        public long AddedAtMs;
    }

    public RetentionRing(int maxEvents, long maxAgeMs)
    {
        MaxEvents = maxEvents;
        MaxAgeMs = maxAgeMs;
    }

    public int MaxEvents { get; }

    public long MaxAgeMs { get; }

    public int Count => _count;

    /// <summary>Bytes of the retained frames.</summary>
    public long Bytes { get; private set; }

    /// <summary>Seq of the oldest retained event (valid when <see cref="Count"/> &gt; 0).</summary>
    public ulong FirstSeq => _entries[_head].Frame.Seq;

    /// <summary>Keeps one reference to <paramref name="frame"/> (taken here).</summary>
    public void Append(Frame frame, long nowMs)
    {
        if (MaxEvents == 0)
        {
            return;
        }

        if (_count == _entries.Length)
        {
            if (_entries.Length < MaxEvents)
            {
                Grow();
            }
            else
            {
                DropOldest();
            }
        }

        frame.AddRef();
        _entries[(_head + _count) % _entries.Length] = new Entry { Frame = frame, AddedAtMs = nowMs };
        _count++;
        Bytes += frame.Length;
    }

    /// <summary>Drops events older than the age limit; returns how many were dropped.</summary>
    public int Trim(long nowMs)
    {
        int dropped = 0;
        while (_count > 0 && nowMs - _entries[_head].AddedAtMs > MaxAgeMs)
        {
            DropOldest();
            dropped++;
        }

        return dropped;
    }

    /// <summary>Visits the retained frames with seq greater than <paramref name="afterSeq"/> without allocating.</summary>
    public int ForEachAfter<TState>(ulong afterSeq, TState state, Func<Frame, TState, bool> visit)
    {
        int visited = 0;
        for (int i = 0; i < _count; i++)
        {
            var frame = _entries[(_head + i) % _entries.Length].Frame;
            if (frame.Seq > afterSeq)
            {
                visited++;
                if (!visit(frame, state))
                {
                    break;
                }
            }
        }

        return visited;
    }

    public void Clear()
    {
        while (_count > 0)
        {
            DropOldest();
        }
    }

    /// <summary>Drops the oldest retained event (a node-wide memory bound); false when there is none.</summary>
    public bool TryDropOldest()
    {
        if (_count == 0)
        {
            return false;
        }

        DropOldest();
        return true;
    }

    private void DropOldest()
    {
        ref var entry = ref _entries[_head];
        Bytes -= entry.Frame.Length;
        entry.Frame.Release();
        entry = default;
        _head = (_head + 1) % _entries.Length;
        _count--;
    }

    private void Grow()
    {
        var next = new Entry[Math.Min(MaxEvents, Math.Max(8, _entries.Length * 2))];
        for (int i = 0; i < _count; i++)
        {
            next[i] = _entries[(_head + i) % _entries.Length];
        }

        _entries = next;
        _head = 0;
    }
}
