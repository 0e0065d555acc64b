using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastRelay.Core.Threading;

/// <summary>
/// Bounded lock-free multi-producer single-consumer ring (Vyukov's bounded queue, consumer side simplified).
/// Each cell carries a sequence number so producers claim slots with one CAS and never wait on each other;
/// head and tail live on separate cache lines.
/// </summary>
public sealed class MpscRing<T>
{
    private struct Cell
    {
        public long Sequence;
        public T Item;
    }

    private readonly Cell[] _cells;
    private readonly int _mask;
    private RingPositions _pos;

    public MpscRing(int capacity)
    {
        if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "Capacity must be a power of two, at least 2.");
        }

        _cells = new Cell[capacity];
        _mask = capacity - 1;
        for (int i = 0; i < capacity; i++)
        {
            _cells[i].Sequence = i;
        }
    }

    public int Capacity => _cells.Length;

    /// <summary>Approximate number of queued items (exact when producers and consumer are quiet).</summary>
    public int Count
    {
        get
        {
            long count = Volatile.Read(ref _pos.Enqueue) - Volatile.Read(ref _pos.Dequeue);
            return (int)Math.Clamp(count, 0, _cells.Length);
        }
    }

    /// <summary>True when the consumer would find nothing to dequeue.</summary>
    public bool IsEmpty
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            long pos = _pos.Dequeue;
            return Volatile.Read(ref _cells[pos & _mask].Sequence) != pos + 1;
        }
    }

    /// <summary>Any thread. False when the ring is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnqueue(T item)
    {
        var cells = _cells;
        long pos = Volatile.Read(ref _pos.Enqueue);
        while (true)
        {
            ref Cell cell = ref cells[pos & _mask];
            long seq = Volatile.Read(ref cell.Sequence);
            long diff = seq - pos;
            if (diff == 0)
            {
                long seen = Interlocked.CompareExchange(ref _pos.Enqueue, pos + 1, pos);
                if (seen == pos)
                {
                    cell.Item = item;
                    Volatile.Write(ref cell.Sequence, pos + 1);
                    return true;
                }

                pos = seen;
            }
            else if (diff < 0)
            {
                return false;
            }
            else
            {
                pos = Volatile.Read(ref _pos.Enqueue);
            }
        }
    }

    /// <summary>Consumer thread only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out T item)
    {
        long pos = _pos.Dequeue;
        ref Cell cell = ref _cells[pos & _mask];
        if (Volatile.Read(ref cell.Sequence) != pos + 1)
        {
            item = default!;
            return false;
        }

        item = cell.Item;
        if (RuntimeHelpers.IsReferenceOrContainsReferences<T>())
        {
            cell.Item = default!;
        }

        Volatile.Write(ref cell.Sequence, pos + _mask + 1);
        Volatile.Write(ref _pos.Dequeue, pos + 1);
        return true;
    }
}

/// <summary>Producer and consumer positions of a ring, each on its own cache line (no false sharing).</summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct RingPositions
{
    [FieldOffset(64)] public long Enqueue;
    [FieldOffset(128)] public long Dequeue;
}
