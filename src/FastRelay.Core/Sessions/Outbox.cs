using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Core.Sessions;

/// <summary>
/// A connection's bounded queue of frames waiting to be written. Any thread enqueues (shard threads for events,
/// the read loop for replies); exactly one writer drains it and coalesces what it finds into one send.
/// The queue is lock-free and segmented: it is created on first use and grows with bursts (an idle connection
/// holds nothing; a busy one reuses its segments without allocating), bounded by frame count and bytes.
/// </summary>
public sealed class Outbox
{
    private readonly int _capacity;
    private readonly long _maxBytes;
    private readonly AsyncSignal _signal = new();
    private ConcurrentQueue<Frame>? _queue;
    private int _count;
    private long _queuedBytes;
    private long _dropped;
    private int _completed;

    public Outbox(int capacity, long maxBytes)
    {
        _capacity = capacity;
        _maxBytes = maxBytes;
    }

    /// <summary>Bytes queued and not yet taken by the writer.</summary>
    public long QueuedBytes => Volatile.Read(ref _queuedBytes);

    /// <summary>Droppable frames dropped because the outbox was over its cap.</summary>
    public long Dropped => Volatile.Read(ref _dropped);

    /// <summary>True once <see cref="Complete"/> was called: no more frames are accepted.</summary>
    public bool IsCompleted => Volatile.Read(ref _completed) != 0;

    /// <summary>
    /// Takes over one reference to <paramref name="frame"/> (released here on failure).
    /// Returns <see cref="EnqueueResult.Overflow"/> when a frame that must not be dropped did not fit:
    /// the caller closes the session as a slow consumer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public EnqueueResult Enqueue(Frame frame)
    {
        if (Volatile.Read(ref _completed) != 0)
        {
            frame.Release();
            return EnqueueResult.Closed;
        }

        var queue = _queue ?? CreateQueue();
        // Soft caps: concurrent producers may overshoot by a frame each, never more.
        if (Volatile.Read(ref _count) >= _capacity || Volatile.Read(ref _queuedBytes) + frame.Length > _maxBytes)
        {
            frame.Release();
            if ((frame.Flags & EventFlags.Droppable) != 0)
            {
                Interlocked.Increment(ref _dropped);
                return EnqueueResult.Dropped;
            }

            return EnqueueResult.Overflow;
        }

        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _queuedBytes, frame.Length);
        queue.Enqueue(frame);
        _signal.Set();
        return EnqueueResult.Queued;
    }

    /// <summary>Writer only: waits until frames are queued or the outbox is completed.</summary>
    public ValueTask WaitAsync() => _signal.WaitAsync();

    /// <summary>Writer only: takes the next frame; the writer owns one reference and releases it after writing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out Frame frame)
    {
        var queue = Volatile.Read(ref _queue);
        if (queue is not null && queue.TryDequeue(out frame!))
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Add(ref _queuedBytes, -frame.Length);
            return true;
        }

        frame = null!;
        return false;
    }

    /// <summary>Stops accepting frames and wakes the writer so it can flush what is queued and finish.</summary>
    public void Complete()
    {
        if (Interlocked.Exchange(ref _completed, 1) == 0)
        {
            _signal.Set();
        }
    }

    /// <summary>Wakes the writer without queuing a frame (transport-level control such as a WebSocket pong).</summary>
    public void Wake() => _signal.Set();

    /// <summary>Releases every queued frame (after the connection is gone).</summary>
    public void DiscardAll()
    {
        Complete();
        while (TryDequeue(out var frame))
        {
            frame.Release();
        }
    }

    /// <summary>Frames queued and not yet taken by the writer.</summary>
    public int Count => Volatile.Read(ref _count);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ConcurrentQueue<Frame> CreateQueue()
    {
        var queue = new ConcurrentQueue<Frame>();
        return Interlocked.CompareExchange(ref _queue, queue, null) ?? queue;
    }
}

/// <summary>What happened to a frame offered to an <see cref="Outbox"/>.</summary>
public enum EnqueueResult : byte
{
    Queued,
    /// <summary>Droppable frame dropped for a slow consumer (counted).</summary>
    Dropped,
    /// <summary>A frame that must not be dropped did not fit: the consumer is too slow.</summary>
    Overflow,
    /// <summary>The outbox no longer accepts frames (connection closing).</summary>
    Closed,
}
