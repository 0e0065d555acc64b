using System.Threading.Channels;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A live subscription to one topic. Events are buffered in a channel (bounded by
/// <see cref="FastRelayClientOptions.SubscriptionBufferCapacity"/>) and read with <see cref="ReadAllAsync"/>, or pushed to
/// the callback given to SubscribeAsync. The stream ends normally on unsubscribe or client close, and with an exception
/// when the connection is lost or the consumer falls too far behind.
/// </summary>
public sealed class Subscription : IAsyncDisposable
{
    private readonly FastRelayClient _client;
    private readonly Channel<RelayEvent> _events;
    private readonly int _capacity;
    private readonly Task? _pump;
    private long _dropped;
    private ulong _lastBufferedSeq;
    private int _ended;

    internal Subscription(FastRelayClient client, string topic, int capacity, Func<RelayEvent, ValueTask>? handler)
    {
        _client = client;
        Topic = topic;
        _capacity = capacity;
        _events = capacity > 0
            ? Channel.CreateBounded<RelayEvent>(new BoundedChannelOptions(capacity)
            {
                FullMode = BoundedChannelFullMode.Wait, // only TryWrite is used: "full" is detected, never waited on
                SingleWriter = true,
            })
            : Channel.CreateUnbounded<RelayEvent>(new UnboundedChannelOptions { SingleWriter = true });
        if (handler is not null)
        {
            _pump = PumpAsync(handler);
        }
    }

    public string Topic { get; }

    /// <summary>The topic's epoch when the subscription started (from the SUB ACK).</summary>
    public ulong Epoch { get; private set; }

    /// <summary>The topic's last seq when the subscription started: the first event delivered has a higher seq.</summary>
    public ulong StartSeq { get; private set; }

    /// <summary>Droppable events discarded because the buffer was full.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>False once the subscription has ended (unsubscribed, closed, lost, slow consumer).</summary>
    public bool IsActive => Volatile.Read(ref _ended) == 0;

    /// <summary>
    /// Completes when the subscription has ended and every buffered event was consumed (for a callback subscription:
    /// handled); faults with the reason when it ended abnormally or the callback threw.
    /// </summary>
    public Task Completion => _pump ?? _events.Reader.Completion;

    /// <summary>The events in seq order. Ends when the subscription ends; throws the reason if it ended abnormally.</summary>
    public IAsyncEnumerable<RelayEvent> ReadAllAsync(CancellationToken ct = default)
    {
        if (_pump is not null)
        {
            throw new InvalidOperationException("This subscription delivers its events to a callback; ReadAllAsync is for subscriptions created without one.");
        }

        return _events.Reader.ReadAllAsync(ct);
    }

    /// <summary>Stops delivery, ends the event stream normally and sends UNSUB when no other subscription of this client needs the topic.</summary>
    /// <exception cref="FastRelayException">The server refused the UNSUB (e.g. 404).</exception>
    public Task UnsubscribeAsync(CancellationToken ct = default) =>
        TryEnd(error: null) ? _client.UnsubscribeAsync(this, ct) : Task.CompletedTask;

    /// <summary>Unsubscribes, ignoring a refusal or a closed connection.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await UnsubscribeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is FastRelayException or TimeoutException)
        {
            // The subscription is gone locally either way; a server that no longer knows it is fine.
        }
    }

    internal void Activate(ulong epoch, ulong startSeq)
    {
        Epoch = epoch;
        StartSeq = startSeq;
        _lastBufferedSeq = startSeq;
    }

    /// <summary>Buffers one event; runs on the receive loop and never waits.</summary>
    internal void Deliver(RelayEvent relayEvent)
    {
        if (_events.Writer.TryWrite(relayEvent))
        {
            _lastBufferedSeq = relayEvent.Seq;
            return;
        }

        if (!IsActive)
        {
            return;
        }

        if ((relayEvent.Flags & EventFlags.Droppable) != 0)
        {
            Interlocked.Increment(ref _dropped);
            return;
        }

        _client.OnSlowConsumer(this, new FastRelaySlowConsumerException(Topic, _capacity, _lastBufferedSeq));
    }

    /// <summary>Ends the event stream once; returns false when it had already ended.</summary>
    internal bool TryEnd(Exception? error)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
        {
            return false;
        }

        _events.Writer.TryComplete(error);
        return true;
    }

    private async Task PumpAsync(Func<RelayEvent, ValueTask> handler)
    {
        await Task.Yield(); // the handler never runs on the subscriber's or the receive loop's thread
        await foreach (var relayEvent in _events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                await handler(relayEvent).ConfigureAwait(false);
            }
            catch
            {
                // A failing handler ends its subscription; Completion carries the handler's exception.
                await DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }
}
