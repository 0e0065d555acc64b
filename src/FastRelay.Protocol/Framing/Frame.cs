using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace FastRelay.Protocol;

/// <summary>
/// One encoded envelope in a pooled buffer, shared by reference: encoded once, written to every subscriber.
/// Reference-counted; the last <see cref="Release"/> returns it to its <see cref="FramePool"/>.
/// Also an <see cref="IBufferWriter{T}"/> so the codec writes straight into it.
/// </summary>
public sealed class Frame : IBufferWriter<byte>
{
    private const int InitialSize = 512;

    private readonly FramePool? _pool;
    private byte[] _buffer;
    private int _length;
    private int _refCount;
    private int _epochOffset = -1;
    private int _seqOffset = -1;
    private int _topicStart;
    private int _topicLength;
    private int _keyStart = -1;
    private int _keyLength;

    internal Frame(FramePool? pool)
    {
        _pool = pool;
        _buffer = [];
    }

    /// <summary>Creates an unpooled frame (tests, cold paths). <see cref="Release"/> still works.</summary>
    public static Frame CreateUnpooled() => new(null) { _refCount = 1 };

    /// <summary>Length of the encoded envelope.</summary>
    public int Length => _length;

    /// <summary>The encoded envelope.</summary>
    public ReadOnlySpan<byte> Span => new(_buffer, 0, _length);

    /// <summary>The encoded envelope.</summary>
    public ReadOnlyMemory<byte> Memory => new(_buffer, 0, _length);

    /// <summary>Delivery flags of the envelope (copied here so outboxes need not decode).</summary>
    public EventFlags Flags { get; set; }

    /// <summary>The seq stamped into this frame (0 for control frames).</summary>
    public ulong Seq { get; private set; }

    /// <summary>Current number of holders.</summary>
    public int RefCount => Volatile.Read(ref _refCount);

    internal int Capacity => _buffer.Length;

    /// <summary>Adds a holder. Each holder calls <see cref="Release"/> once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddRef() => Interlocked.Increment(ref _refCount);

    /// <summary>Adds <paramref name="count"/> holders at once (one interlocked operation for a whole fan-out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddRefs(int count) => Interlocked.Add(ref _refCount, count);

    /// <summary>Drops a holder; the last one returns the frame to its pool.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Release()
    {
        int left = Interlocked.Decrement(ref _refCount);
        if (left == 0)
        {
            _pool?.Return(this);
        }
        else if (left < 0)
        {
            ThrowOverReleased();
        }
    }

    /// <summary>Writes epoch and seq into the fixed-width slots left by <see cref="EnvelopeCodec.EncodeEventTemplate"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void StampSequence(ulong epoch, ulong seq)
    {
        Debug.Assert(_seqOffset > 0 && _epochOffset > 0);
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.AsSpan(_epochOffset + 1, 8), epoch);
        BinaryPrimitives.WriteUInt64BigEndian(_buffer.AsSpan(_seqOffset + 1, 8), seq);
        Seq = seq;
    }

    /// <summary>True for an EVENT frame built by <see cref="EnvelopeCodec.EncodeEventTemplate"/> (it has seq slots).</summary>
    public bool IsEvent => _seqOffset > 0;

    /// <summary>The topic's UTF-8 bytes inside an event frame (empty for other frames).</summary>
    public ReadOnlySpan<byte> Topic => new(_buffer, _topicStart, _topicLength);

    /// <summary>True for an event frame that carries an ordering key (field 21).</summary>
    public bool HasKey => _keyStart >= 0;

    /// <summary>The ordering key's UTF-8 bytes inside an event frame (empty when it has none).</summary>
    public ReadOnlySpan<byte> Key => _keyStart >= 0 ? new(_buffer, _keyStart, _keyLength) : default;

    internal void SetEventLayout(int topicStart, int topicLength, int epochOffset, int seqOffset, int keyStart, int keyLength)
    {
        _topicStart = topicStart;
        _topicLength = topicLength;
        _keyStart = keyStart;
        _keyLength = keyStart >= 0 ? keyLength : 0;
        _epochOffset = epochOffset;
        _seqOffset = seqOffset;
    }

    /// <summary>Where the topic, epoch, seq and key sit in this frame's bytes (see <see cref="CopyEventFrom"/>).</summary>
    public EventLayout Layout
    {
        get
        {
            if ((uint)_topicStart > ushort.MaxValue || (uint)_topicLength > ushort.MaxValue
                || _epochOffset > ushort.MaxValue || _seqOffset > ushort.MaxValue)
            {
                ThrowLayoutOutOfRange();
            }

            return new EventLayout(
                (ushort)_topicStart,
                (ushort)_topicLength,
                (ushort)Math.Max(0, _epochOffset),
                (ushort)Math.Max(0, _seqOffset),
                _keyStart,
                _keyLength);
        }
    }

    /// <summary>
    /// Replaces the content with a copy of an event frame's bytes, its <see cref="Layout"/>, seq and flags: the copy
    /// is the same frame to every reader (a replay from retained history).
    /// </summary>
    public void CopyEventFrom(ReadOnlySpan<byte> bytes, in EventLayout layout, ulong seq, EventFlags flags)
    {
        CopyFrom(bytes);
        _topicStart = layout.TopicStart;
        _topicLength = layout.TopicLength;
        _epochOffset = layout.EpochOffset == 0 ? -1 : layout.EpochOffset;
        _seqOffset = layout.SeqOffset == 0 ? -1 : layout.SeqOffset;
        _keyStart = layout.KeyStart;
        _keyLength = layout.KeyLength;
        if (_topicStart + _topicLength > _length || (_seqOffset > 0 && _seqOffset + 9 > _length)
            || (_epochOffset > 0 && _epochOffset + 9 > _length) || (_keyStart >= 0 && (long)_keyStart + _keyLength > _length))
        {
            Reset();
            ThrowLayoutOutOfRange();
        }

        Flags = flags;
        Seq = seq;
    }

    /// <summary>Empties the frame for re-encoding (buffer kept).</summary>
    public void Reset()
    {
        _length = 0;
        _epochOffset = -1;
        _seqOffset = -1;
        _topicStart = 0;
        _topicLength = 0;
        _keyStart = -1;
        _keyLength = 0;
        Flags = EventFlags.None;
        Seq = 0;
    }

    /// <summary>Replaces the content with a copy of <paramref name="bytes"/>.</summary>
    public void CopyFrom(ReadOnlySpan<byte> bytes)
    {
        Reset();
        bytes.CopyTo(GetSpan(bytes.Length));
        Advance(bytes.Length);
    }

    void IBufferWriter<byte>.Advance(int count) => Advance(count);

    internal void Advance(int count)
    {
        if ((uint)count > (uint)(_buffer.Length - _length))
        {
            ThrowAdvancedTooFar();
        }

        _length += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        EnsureCapacity(sizeHint);
        return _buffer.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        EnsureCapacity(sizeHint);
        return _buffer.AsSpan(_length);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EnsureCapacity(int sizeHint)
    {
        if (sizeHint < 1)
        {
            sizeHint = 1;
        }

        if (_buffer.Length - _length < sizeHint)
        {
            Grow(sizeHint);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow(int sizeHint)
    {
        int needed = checked(_length + sizeHint);
        int size = Math.Max(Math.Max(needed, InitialSize), _buffer.Length * 2);
        var next = ArrayPool<byte>.Shared.Rent(size);
        _buffer.AsSpan(0, _length).CopyTo(next);
        ReturnBuffer();
        _buffer = next;
    }

    /// <summary>Called by the pool when the frame is handed out again.</summary>
    internal void Revive()
    {
        Reset();
        _refCount = 1;
    }

    /// <summary>Called by the pool on return: large buffers go back to the shared array pool.</summary>
    internal void Trim(int keepBytes)
    {
        if (_buffer.Length > keepBytes)
        {
            ReturnBuffer();
            _buffer = [];
        }
    }

    private void ReturnBuffer()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowOverReleased() => throw new InvalidOperationException("Frame released more times than referenced.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowLayoutOutOfRange() => throw new InvalidOperationException("Event layout does not fit the frame's bytes.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowAdvancedTooFar() => throw new InvalidOperationException("Advanced past the end of the buffer.");
}
