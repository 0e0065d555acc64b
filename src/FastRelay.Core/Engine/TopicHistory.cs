using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// A topic's recent events, oldest first, bounded by count and age, kept as copies of their bytes in a chain of
/// slabs from the shard's <see cref="SlabPool"/>: appending copies the frame in (the live frame goes back to its
/// pool after fan-out), a replay rents frames and copies the bytes back out, identical to what subscribers saw live.
/// Owned by the topic's shard thread. Each entry is a 40-byte header (added-at time, seq, length, flags, the
/// frame's <see cref="EventLayout"/>) and the bytes, 8-byte aligned; an entry never spans two slabs.
/// </summary>
internal sealed unsafe class TopicHistory
{
    private readonly SlabPool _slabs;
    private Slab* _head;
    private Slab* _tail;
    private int _headOffset;
    private int _count;
    private long _bytes;

    [StructLayout(LayoutKind.Sequential)]
    private struct Entry
    {
        public const int HeaderBytes = 40;

        public long AddedAtMs;
        public ulong Seq;
        public int Length;
        public EventFlags Flags;
        public EventLayout Layout;
    }

    public TopicHistory(SlabPool slabs, int maxEvents, long maxAgeMs)
    {
        Debug.Assert(sizeof(Entry) == Entry.HeaderBytes);
        _slabs = slabs;
        MaxEvents = maxEvents;
        MaxAgeMs = maxAgeMs;
    }

    public int MaxEvents { get; }

    public long MaxAgeMs { get; }

    public int Count => _count;

    /// <summary>Bytes of the slabs this history holds (headers, entries and the unused ends of its first and last slab).</summary>
    public long Bytes => _bytes;

    /// <summary>Sizes of the slabs this history holds, first to last (diagnostics and tests; allocates).</summary>
    internal int[] SlabSizes()
    {
        var sizes = new List<int>();
        for (var slab = _head; slab is not null; slab = slab->Next)
        {
            sizes.Add(slab->Capacity);
        }

        return sizes.ToArray();
    }

    /// <summary>Seq of the oldest retained event (0 when <see cref="Count"/> is 0).</summary>
    public ulong FirstSeq => _count > 0 ? Oldest->Seq : 0;

    private Entry* Oldest => (Entry*)((byte*)_head + _headOffset);

    /// <summary>Bytes an event of <paramref name="length"/> bytes takes in a slab.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int EntryBytes(int length) => Entry.HeaderBytes + ((length + 7) & ~7);

    /// <summary>Copies <paramref name="frame"/>'s bytes and what a replay needs to rebuild it; the frame is not kept.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(Frame frame, long nowMs)
    {
        if (MaxEvents == 0)
        {
            return;
        }

        var layout = frame.Layout;
        if (_count == MaxEvents)
        {
            DropOldest();
        }

        int length = frame.Length;
        int entryBytes = EntryBytes(length);
        var tail = _tail;
        if (tail is null || tail->Room < entryBytes)
        {
            tail = AddSlab(entryBytes);
        }

        var entry = (Entry*)((byte*)tail + tail->End);
        entry->AddedAtMs = nowMs;
        entry->Seq = frame.Seq;
        entry->Length = length;
        entry->Flags = frame.Flags;
        entry->Layout = layout;
        frame.Span.CopyTo(new Span<byte>(entry + 1, length));
        tail->End += entryBytes;
        _count++;
    }

    /// <summary>Drops events older than the age limit; returns how many were dropped.</summary>
    public int Trim(long nowMs)
    {
        int dropped = 0;
        while (_count > 0 && nowMs - Oldest->AddedAtMs > MaxAgeMs)
        {
            DropOldest();
            dropped++;
        }

        return dropped;
    }

    /// <summary>
    /// Hands <paramref name="visit"/> a copy of each retained event with seq greater than <paramref name="afterSeq"/>,
    /// oldest first, in a frame rented from <paramref name="frames"/>: the visitor owns that frame's one reference.
    /// Stops when the visitor returns false. Returns how many frames were handed out.
    /// </summary>
    public int ForEachAfter<TState>(ulong afterSeq, FramePool frames, TState state, Func<Frame, TState, bool> visit)
    {
        int visited = 0;
        var slab = _head;
        int offset = _headOffset;
        for (int left = _count; left > 0; left--)
        {
            if (offset == slab->End)
            {
                slab = slab->Next;
                offset = Slab.HeaderBytes;
            }

            var entry = (Entry*)((byte*)slab + offset);
            offset += EntryBytes(entry->Length);
            if (entry->Seq <= afterSeq)
            {
                continue;
            }

            var frame = frames.Rent();
            frame.CopyEventFrom(new ReadOnlySpan<byte>(entry + 1, entry->Length), entry->Layout, entry->Seq, entry->Flags);
            visited++;
            if (!visit(frame, state))
            {
                break;
            }
        }

        return visited;
    }

    /// <summary>Drops every event and gives the slabs back.</summary>
    public void Clear()
    {
        var slab = _head;
        while (slab is not null)
        {
            var next = slab->Next;
            _slabs.Return(slab);
            slab = next;
        }

        _head = null;
        _tail = null;
        _headOffset = 0;
        _count = 0;
        _bytes = 0;
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

    /// <summary>Drops the oldest event; a slab whose last entry goes is given back.</summary>
    private void DropOldest()
    {
        var head = _head;
        _headOffset += EntryBytes(Oldest->Length);
        _count--;
        if (_headOffset < head->End)
        {
            return;
        }

        _head = head->Next;
        _headOffset = Slab.HeaderBytes;
        if (_head is null)
        {
            _tail = null;
        }

        _bytes -= head->Capacity;
        _slabs.Return(head);
    }

    /// <summary>
    /// Chains a slab with room for an entry of <paramref name="entryBytes"/>: at least half the size this history
    /// holds already, so a growing history takes few, larger slabs and a quiet one stays in one small slab.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private Slab* AddSlab(int entryBytes)
    {
        var slab = _slabs.Rent(entryBytes, _bytes / 2);
        if (_tail is null)
        {
            _head = slab;
            _headOffset = Slab.HeaderBytes;
        }
        else
        {
            _tail->Next = slab;
        }

        _tail = slab;
        _bytes += slab->Capacity;
        return slab;
    }
}
