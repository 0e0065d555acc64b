using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastRelay.Core.Engine;

/// <summary>
/// A shard's pool of slabs: blocks of native memory that hold topics' retained events (<see cref="TopicHistory"/>).
/// Outside the GC heap, so history costs the collector nothing to trace, copy or count; single-threaded (the shard
/// thread owns it, no locks). Slabs come in power-of-two sizes from <see cref="MinSlabBytes"/> to the pool's
/// <see cref="MaxSlabBytes"/>; a larger block is sized to its one event and freed when done. Returned slabs are kept
/// for reuse up to <see cref="FreeLimitBytes"/>, the rest go back to the allocator.
/// </summary>
internal sealed unsafe class SlabPool : IDisposable
{
    /// <summary>Smallest slab: a topic's first event (a few hundred bytes) takes no more.</summary>
    public const int MinSlabBytes = 512;

    /// <summary>Largest pooled slab by default (see docs/architecture.md, History).</summary>
    public const int DefaultMaxSlabBytes = 16 * 1024;

    /// <summary>Free slabs kept for reuse by default, in bytes.</summary>
    public const long DefaultFreeLimitBytes = 1024 * 1024;

    private const int MinShift = 9; // log2(MinSlabBytes)

    private readonly Slab*[] _free;
    private long _freeBytes;
    private long _heldBytes;
    private int _outstanding;
    private bool _disposed;

    /// <param name="maxSlabBytes">Largest pooled slab (a power of two, 512 B .. 1 MiB).</param>
    /// <param name="freeLimitBytes">Bytes of returned slabs kept for reuse; beyond, they are freed.</param>
    public SlabPool(int maxSlabBytes = DefaultMaxSlabBytes, long freeLimitBytes = DefaultFreeLimitBytes)
    {
        if (!BitOperations.IsPow2(maxSlabBytes) || maxSlabBytes is < MinSlabBytes or > 1 << 20)
        {
            throw new ArgumentOutOfRangeException(nameof(maxSlabBytes), maxSlabBytes, "must be a power of two, 512 .. 1 MiB");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(freeLimitBytes);
        MaxSlabBytes = maxSlabBytes;
        FreeLimitBytes = freeLimitBytes;
        int classes = BitOperations.Log2((uint)maxSlabBytes) - MinShift + 1;
        _free = new Slab*[classes];
    }

    /// <summary>Largest pooled slab; larger events get a block of their own.</summary>
    public int MaxSlabBytes { get; }

    /// <summary>Bytes of free slabs kept for reuse at most.</summary>
    public long FreeLimitBytes { get; }

    /// <summary>Bytes of native memory this pool holds: slabs in use and free ones.</summary>
    public long HeldBytes => _heldBytes;

    /// <summary>Bytes of free slabs kept for reuse.</summary>
    public long FreeBytes => _freeBytes;

    /// <summary>Slabs handed out and not returned.</summary>
    public int Outstanding => _outstanding;

    /// <summary>
    /// The pool's largest slab for a shard with <paramref name="budgetBytes"/> of retention: slabs stay at most 1/64 of
    /// the budget, so the clock sweep (which frees whole slabs) overshoots it by little.
    /// </summary>
    public static int MaxSlabBytesFor(long budgetBytes)
    {
        long share = Math.Clamp(budgetBytes / 64, MinSlabBytes, DefaultMaxSlabBytes);
        return 1 << BitOperations.Log2((ulong)share); // the power of two at or below
    }

    /// <summary>
    /// A slab with room for <paramref name="bytes"/> after its header: pooled, of the power-of-two size at least
    /// <paramref name="preferredBytes"/> (capped at <see cref="MaxSlabBytes"/>), or a block sized to fit when
    /// <paramref name="bytes"/> needs more than the largest slab.
    /// </summary>
    public Slab* Rent(int bytes, long preferredBytes)
    {
        Debug.Assert(!_disposed && bytes > 0);
        long needed = (long)Slab.HeaderBytes + bytes;
        if (needed > MaxSlabBytes)
        {
            return Allocate(checked((int)needed));
        }

        long size = Math.Clamp(Math.Max(needed, preferredBytes), MinSlabBytes, MaxSlabBytes);
        int cls = BitOperations.Log2(BitOperations.RoundUpToPowerOf2((ulong)size)) - MinShift;
        var slab = _free[cls];
        if (slab is null)
        {
            return Allocate(MinSlabBytes << cls);
        }

        _free[cls] = slab->Next;
        _freeBytes -= slab->Capacity;
        _outstanding++;
        slab->Next = null;
        slab->End = Slab.HeaderBytes;
        return slab;
    }

    /// <summary>Takes a slab back: kept for reuse while the free bytes stay within the limit, freed otherwise.</summary>
    public void Return(Slab* slab)
    {
        Debug.Assert(!_disposed);
        _outstanding--;
        int capacity = slab->Capacity;
        if (capacity <= MaxSlabBytes && BitOperations.IsPow2(capacity) && _freeBytes + capacity <= FreeLimitBytes)
        {
            int cls = BitOperations.Log2((uint)capacity) - MinShift;
            slab->Next = _free[cls];
            _free[cls] = slab;
            _freeBytes += capacity;
            return;
        }

        _heldBytes -= capacity;
        NativeMemory.Free(slab);
    }

    /// <summary>Frees the free slabs. Slabs still handed out must have been returned (their histories cleared).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        for (int cls = 0; cls < _free.Length; cls++)
        {
            var slab = _free[cls];
            while (slab is not null)
            {
                var next = slab->Next;
                _heldBytes -= slab->Capacity;
                NativeMemory.Free(slab);
                slab = next;
            }

            _free[cls] = null;
        }

        _freeBytes = 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Slab* Allocate(int capacity)
    {
        var slab = (Slab*)NativeMemory.Alloc((nuint)capacity);
        slab->Next = null;
        slab->Capacity = capacity;
        slab->End = Slab.HeaderBytes;
        _heldBytes += capacity;
        _outstanding++;
        return slab;
    }
}

/// <summary>
/// Header of a slab: the next slab of the same history (or of the pool's free list), the slab's size, and where its
/// entries end. Entries follow the header, each 8-byte aligned.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Slab
{
    public const int HeaderBytes = 16;

    public Slab* Next;
    public int Capacity;
    public int End;

    /// <summary>Bytes free at the end.</summary>
    public readonly int Room => Capacity - End;
}
