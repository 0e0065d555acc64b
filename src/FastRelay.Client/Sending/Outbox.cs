using System.Threading.Channels;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// The connection's send queue and its single writer loop. Callers encode on their own thread into pooled frames and
/// enqueue them; the writer drains whatever is queued into the transport and flushes once per batch (one syscall for
/// many small envelopes on raw sockets). Publishes take a slot out of a fixed capacity (backpressure); control frames
/// (HELLO, SUB, UNSUB, PING, PONG) skip the slots so the receive loop can always answer a PING without waiting.
/// </summary>
internal sealed class Outbox
{
    /// <summary>Envelopes written between two flushes at most, so a flood of tiny frames still gets flushed regularly.</summary>
    private const int MaxFramesPerFlush = 256;

    private readonly Channel<Queued> _queue = Channel.CreateUnbounded<Queued>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _slots;

    public Outbox(int capacity)
    {
        _slots = new SemaphoreSlim(capacity, capacity);
    }

    /// <summary>Takes a publish slot if one is free, without waiting or allocating.</summary>
    public bool TryReserve() => _slots.Wait(0);

    /// <summary>Waits for a publish slot.</summary>
    public Task ReserveAsync(CancellationToken ct) => _slots.WaitAsync(ct);

    public void ReleaseSlot() => _slots.Release();

    /// <summary>Queues a frame; the outbox releases it once written. False (frame not taken) when the outbox is closed.</summary>
    public bool TryEnqueue(Frame frame, bool holdsSlot) => _queue.Writer.TryWrite(new Queued(frame, holdsSlot));

    /// <summary>No more frames are accepted; the writer loop ends once the queue is written out.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    /// <summary>Writes queued frames until <see cref="Complete"/> (ends normally) or a send fails (throws).</summary>
    /// <param name="ct">Cancels a send in progress; the caller also calls <see cref="Complete"/> so an idle loop ends.</param>
    public async Task RunWriterAsync(IClientTransport transport, CancellationToken ct)
    {
        var reader = _queue.Reader;
        try
        {
            // No token on the wait: a cancellable wait allocates per call, and Complete() ends this loop anyway.
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                int written = 0;
                while (written < MaxFramesPerFlush && reader.TryRead(out var queued))
                {
                    try
                    {
                        await transport.SendAsync(queued.Frame.Memory, ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        Done(queued);
                    }

                    written++;
                }

                await transport.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _queue.Writer.TryComplete();
            while (reader.TryRead(out var queued))
            {
                Done(queued);
            }
        }
    }

    private void Done(Queued queued)
    {
        queued.Frame.Release();
        if (queued.HoldsSlot)
        {
            _slots.Release();
        }
    }

    private readonly record struct Queued(Frame Frame, bool HoldsSlot);
}
