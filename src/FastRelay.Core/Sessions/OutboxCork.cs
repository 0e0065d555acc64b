using System.Runtime.CompilerServices;

namespace FastRelay.Core.Sessions;

/// <summary>
/// A shard thread's cork (uWebSockets' word): while it is in place, a frame queued on that thread does not wake its
/// connection's writer; the outbox is remembered instead, and <see cref="Uncork"/> flushes each one once at the end
/// of the shard's batch, by a non-blocking write on this thread when the shard has nothing else to do, or by one
/// writer wake-up otherwise. One wake-up or one send per connection per batch, not per frame.
/// </summary>
public sealed class OutboxCork
{
    [ThreadStatic]
    private static OutboxCork? t_current;

    private static long s_nextTicket;

    private Outbox[] _outboxes = new Outbox[64];
    private int _count;
    private long _ticket = Interlocked.Increment(ref s_nextTicket);

    private OutboxCork()
    {
    }

    /// <summary>The cork of the calling thread, or null when frames queued on it wake their writers at once.</summary>
    internal static OutboxCork? Current
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => t_current;
    }

    /// <summary>Outboxes waiting for <see cref="Uncork"/>.</summary>
    public int Count => _count;

    /// <summary>Puts a cork on the calling thread (a shard thread, for its whole life) and returns it.</summary>
    public static OutboxCork Install() => t_current ??= new OutboxCork();

    /// <summary>Takes the calling thread's cork off, flushing what it holds first.</summary>
    public static void Remove()
    {
        t_current?.Uncork(inline: false);
        t_current = null;
    }

    /// <summary>Remembers <paramref name="outbox"/> once per batch (a repeat within the batch is skipped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Add(Outbox outbox)
    {
        // Best effort: two shards corking the same outbox overwrite each other's ticket, and then one of them may
        // list it twice; flushing an outbox twice is harmless.
        if (outbox.CorkTicket == _ticket)
        {
            return;
        }

        outbox.CorkTicket = _ticket;
        if (_count == _outboxes.Length)
        {
            Grow();
        }

        _outboxes[_count++] = outbox;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow() => Array.Resize(ref _outboxes, _outboxes.Length * 2);

    /// <summary>
    /// Flushes every outbox queued to since the last call: written inline (<paramref name="inline"/>: the shard is
    /// about to go idle, so the sends cost it nothing it had to do) or handed to each connection's writer.
    /// </summary>
    public void Uncork(bool inline)
    {
        if (_count == 0)
        {
            return;
        }

        // A new ticket first: an outbox queued to while flushing is listed again and flushed in this same pass.
        _ticket = Interlocked.Increment(ref s_nextTicket);
        for (int i = 0; i < _count; i++)
        {
            var outbox = _outboxes[i];
            _outboxes[i] = null!;
            outbox.Flush(inline);
        }

        _count = 0;
    }
}
