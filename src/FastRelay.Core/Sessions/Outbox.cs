using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Core.Sessions;

/// <summary>
/// A connection's bounded queue of frames waiting to be written. Any thread enqueues (shard threads for events,
/// the read loop for replies); exactly one writer at a time drains it and coalesces what it finds into one send
/// (the connection's writer, or a shard thread writing inline at the end of a corked batch: <see cref="OutboxCork"/>).
/// Two lanes: control frames (replies, errors, presence, drain) are never dropped and go out first; events keep
/// their order in their own lane. The event lane has a soft byte cap: above it droppable events are dropped (and
/// counted), partial events are merged instead (<see cref="EventFlags.Coalesced"/>), and critical events are
/// still queued up to the hard cap; a consumer that stays above the soft cap past the grace period, or reaches the
/// hard cap, is a slow consumer and is closed. Queues are lock-free and segmented: created when a second frame waits, growing
/// with bursts, reused without allocating afterwards.
/// </summary>
public sealed class Outbox
{
    private readonly OutboxLimits _limits;
    private readonly FramePool _frames;
    // The writer's wake-up: the transport's writer when one is attached (it schedules itself, so an idle connection
    // keeps no writer parked), else a signal created by the first WaitAsync or wake.
    private IOutboxWriter? _wakeTarget;
    private AsyncSignal? _signal;
    private ConcurrentQueue<Frame>? _control;
    private ConcurrentQueue<Frame>? _events;

    // Each lane's first frame goes into a one-frame slot while the lane has no queue yet: a connection that only ever
    // has one frame waiting at a time (the WELCOME, a SUB's ACK, a quiet topic's events) never creates the lane's
    // ConcurrentQueue (~0.8 KB with its first segment). A producer uses the slot only while it sees no queue, and a
    // queue, once created, is never dropped, so each producer's frames stay in order: the slot's frame is older than
    // anything that producer queued after it (another producer's frames carry no order relative to it anyway).
    private Frame? _controlSlot;
    private Frame? _eventSlot;
    private int _count;
    private long _eventBytes;
    private long _overSoftSinceMs;
    private volatile bool _backlogged;
    private long _dropped;
    private long _coalesced;
    private int _completed;
    private IOutboxWriter? _writer;

    public Outbox(OutboxLimits limits, FramePool frames)
    {
        _limits = limits;
        _frames = frames;
    }

    /// <summary>Bytes of events queued and not yet taken by the writer.</summary>
    public long QueuedBytes => Volatile.Read(ref _eventBytes);

    /// <summary>Frames queued (both lanes).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Droppable events dropped because the consumer was over its cap.</summary>
    public long Dropped => Volatile.Read(ref _dropped);

    /// <summary>Partial events merged into a neighbour because the consumer was over its cap.</summary>
    public long Coalesced => Volatile.Read(ref _coalesced);

    /// <summary>True once <see cref="Complete"/> was called: no more frames are accepted.</summary>
    public bool IsCompleted => Volatile.Read(ref _completed) != 0;

    /// <summary>
    /// Takes over one reference to <paramref name="frame"/> (released here unless queued).
    /// <see cref="EnqueueResult.Overflow"/> means the consumer is too slow: the caller closes the session.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public EnqueueResult Enqueue(Frame frame) => Enqueue(frame, ordered: false);

    /// <summary>
    /// Queues a control frame in the event lane, behind the events already queued and ahead of the ones that
    /// follow: for replies whose position among events matters (a SUB's ACK/RECOVERED before its replay).
    /// </summary>
    public EnqueueResult EnqueueOrdered(Frame frame) => Enqueue(frame, ordered: true);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private EnqueueResult Enqueue(Frame frame, bool ordered)
    {
        if (Volatile.Read(ref _completed) != 0)
        {
            frame.Release();
            return EnqueueResult.Closed;
        }

        if (Volatile.Read(ref _count) >= _limits.MaxFrames)
        {
            // Read before the release: a frame whose only holder is this call (a replayed one) goes back to the
            // pool and may be rented and rewritten by another thread at once.
            bool droppable = frame.IsEvent && (frame.Flags & EventFlags.Droppable) != 0;
            frame.Release();
            if (droppable)
            {
                Interlocked.Increment(ref _dropped);
                return EnqueueResult.Dropped;
            }

            return EnqueueResult.Overflow;
        }

        if (frame.IsEvent || ordered)
        {
            var result = AdmitEvent(frame);
            if (result != EnqueueResult.Queued)
            {
                frame.Release();
                return result;
            }

            Push(ref _events, ref _eventSlot, frame);
        }
        else
        {
            Interlocked.Increment(ref _count);
            Push(ref _control, ref _controlSlot, frame);
        }

        Notify();
        return EnqueueResult.Queued;
    }

    /// <summary>Wakes the writer, or leaves that to the end of the shard batch when the thread is corked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Notify()
    {
        var cork = OutboxCork.Current;
        if (cork is null || _writer is null)
        {
            Signal();
            return;
        }

        cork.Add(this);
    }

    /// <summary>Last cork ticket this outbox was listed under (<see cref="OutboxCork"/> only).</summary>
    internal long CorkTicket;

    /// <summary>
    /// Attaches the transport's writer, once, before the session can receive frames: wake-ups go to
    /// <see cref="IOutboxWriter.Wake"/> (and <see cref="WaitAsync"/> is no longer used). With
    /// <paramref name="writeInline"/>, frames queued on a corked shard thread are written from that thread
    /// (<see cref="IOutboxWriter.WriteInline"/>) instead of waking the writer.
    /// </summary>
    public void AttachWriter(IOutboxWriter writer, bool writeInline = true)
    {
        _writer = writeInline ? writer : null;
        Volatile.Write(ref _wakeTarget, writer);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Signal()
    {
        if (Volatile.Read(ref _wakeTarget) is { } target)
        {
            target.Wake();
        }
        else
        {
            SignalSlow();
        }
    }

    private void SignalSlow() => (_signal ?? CreateSignal()).Set();

    private AsyncSignal CreateSignal()
    {
        var signal = new AsyncSignal();
        return Interlocked.CompareExchange(ref _signal, signal, null) ?? signal;
    }

    /// <summary>End of a corked batch: write inline or wake the writer.</summary>
    internal void Flush(bool inline)
    {
        if (inline && _writer is { } writer)
        {
            writer.WriteInline();
        }
        else
        {
            Signal();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private EnqueueResult AdmitEvent(Frame frame)
    {
        long bytes = Interlocked.Add(ref _eventBytes, frame.Length);
        if (bytes > _limits.SoftMaxBytes)
        {
            var verdict = OverSoftCap(frame, bytes);
            if (verdict != EnqueueResult.Queued)
            {
                Interlocked.Add(ref _eventBytes, -frame.Length);
                return verdict;
            }
        }

        Interlocked.Increment(ref _count);
        return EnqueueResult.Queued;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private EnqueueResult OverSoftCap(Frame frame, long bytes)
    {
        _backlogged = true; // until the lane is empty again, queued partials are merged when written
        long now = Environment.TickCount64;
        long since = Volatile.Read(ref _overSoftSinceMs);
        if (since == 0)
        {
            Interlocked.CompareExchange(ref _overSoftSinceMs, now, 0);
        }
        else if (now - since > _limits.GraceMs)
        {
            return EnqueueResult.Overflow; // stayed over the cap past the grace period
        }

        var flags = frame.Flags;
        if ((flags & EventFlags.Partial) != 0)
        {
            return bytes > _limits.HardMaxBytes ? EnqueueResult.Overflow : EnqueueResult.Queued; // merged when written
        }

        if ((flags & EventFlags.Droppable) != 0)
        {
            Interlocked.Increment(ref _dropped);
            return EnqueueResult.Dropped;
        }

        return bytes > _limits.HardMaxBytes ? EnqueueResult.Overflow : EnqueueResult.Queued;
    }

    /// <summary>Writer only, when none is attached: waits until frames are queued or the outbox is completed.</summary>
    public ValueTask WaitAsync() => (_signal ?? CreateSignal()).WaitAsync();

    /// <summary>
    /// Writer only: the next frame, control lane first. Under pressure, consecutive partial events of one topic come
    /// out merged into one. The writer owns one reference and releases it after writing.
    /// </summary>
    public bool TryDequeue(out Frame frame)
    {
        if (TryTake(ref _control, ref _controlSlot, out frame))
        {
            Interlocked.Decrement(ref _count);
            return true;
        }

        if (!TryTake(ref _events, ref _eventSlot, out frame))
        {
            _backlogged = false; // caught up
            return false;
        }

        Taken(frame);
        if ((frame.Flags & EventFlags.Partial) != 0 && _backlogged && Volatile.Read(ref _events) is { } events)
        {
            frame = CoalesceFollowing(events, frame);
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Push(ref ConcurrentQueue<Frame>? queue, ref Frame? slot, Frame frame)
    {
        var q = Volatile.Read(ref queue);
        if (q is null)
        {
            if (Interlocked.CompareExchange(ref slot, frame, null) is null)
            {
                return;
            }

            q = CreateQueue(ref queue);
        }

        q.Enqueue(frame);
    }

    /// <summary>Writer only (the single consumer): the lane's slot first, then its queue.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryTake(ref ConcurrentQueue<Frame>? queue, ref Frame? slot, out Frame frame)
    {
        if (Volatile.Read(ref slot) is { } single)
        {
            Volatile.Write(ref slot, null); // producers only ever fill an empty slot, so nobody else clears it
            frame = single;
            return true;
        }

        if (Volatile.Read(ref queue) is { } q && q.TryDequeue(out frame!))
        {
            return true;
        }

        frame = null!;
        return false;
    }

    private void Taken(Frame frame)
    {
        Interlocked.Decrement(ref _count);
        if (Interlocked.Add(ref _eventBytes, -frame.Length) <= _limits.SoftMaxBytes)
        {
            Volatile.Write(ref _overSoftSinceMs, 0);
        }
    }

    /// <summary>Merges the partials of the same topic queued right behind <paramref name="first"/> into one frame.</summary>
    private Frame CoalesceFollowing(ConcurrentQueue<Frame> events, Frame first)
    {
        while (events.TryPeek(out var next) && (next.Flags & EventFlags.Partial) != 0 && next.Topic.SequenceEqual(first.Topic))
        {
            var merged = _frames.Rent();
            if (!EnvelopeCodec.TryCoalesce(first, next, merged))
            {
                merged.Release();
                break;
            }

            events.TryDequeue(out _);
            Taken(next);
            next.Release();
            first.Release();
            first = merged;
            Interlocked.Increment(ref _coalesced);
        }

        return first;
    }

    /// <summary>Stops accepting frames and wakes the writer so it can flush what is queued and finish.</summary>
    public void Complete()
    {
        if (Interlocked.Exchange(ref _completed, 1) == 0)
        {
            Signal();
        }
    }

    /// <summary>Wakes the writer without queuing a frame (transport-level control such as a WebSocket pong).</summary>
    public void Wake() => Signal();

    /// <summary>Releases every queued frame (after the connection is gone).</summary>
    public void DiscardAll()
    {
        Complete();
        while (TryDequeue(out var frame))
        {
            frame.Release();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ConcurrentQueue<Frame> CreateQueue(ref ConcurrentQueue<Frame>? field)
    {
        var queue = new ConcurrentQueue<Frame>();
        return Interlocked.CompareExchange(ref field, queue, null) ?? queue;
    }
}

/// <summary>Per-connection outbox bounds (from <see cref="RelayOptions"/>).</summary>
public sealed record OutboxLimits(int MaxFrames, long SoftMaxBytes, long HardMaxBytes, long GraceMs)
{
    public static OutboxLimits From(RelayOptions options) => new(
        options.OutboxCapacity,
        options.OutboxMaxBytes,
        options.OutboxHardMaxBytes > 0 ? options.OutboxHardMaxBytes : options.OutboxMaxBytes * 4,
        (long)options.SlowConsumerGrace.TotalMilliseconds);
}

/// <summary>What happened to a frame offered to an <see cref="Outbox"/>.</summary>
public enum EnqueueResult : byte
{
    Queued,
    /// <summary>Droppable event dropped for a slow consumer (counted).</summary>
    Dropped,
    /// <summary>The consumer is too slow (hard cap, frame cap, or over the soft cap past the grace period).</summary>
    Overflow,
    /// <summary>The outbox no longer accepts frames (connection closing).</summary>
    Closed,
}
