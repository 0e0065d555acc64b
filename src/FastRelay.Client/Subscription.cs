using System.Threading.Channels;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A subscription to one topic or one pattern. Events are buffered in a channel (bounded by
/// <see cref="FastRelayClientOptions.SubscriptionBufferCapacity"/>) and read with <see cref="ReadAllAsync"/>, or pushed to
/// the callback given to SubscribeAsync. Each topic's events come in seq order, each at most once, across reconnects and
/// gap repairs; events that could not be recovered are reported through <see cref="NotRecovered"/> and
/// <see cref="ReadNoticesAsync"/>, never skipped silently. The stream ends normally on unsubscribe or client close, and
/// with an exception when the connection is lost for good or the consumer falls too far behind.
/// </summary>
public sealed class Subscription : IAsyncDisposable
{
    /// <summary>Notices and presence changes kept for their streams; when nobody reads them the oldest go first.</summary>
    private const int SideBufferCapacity = 1024;

    private readonly FastRelayClient _client;
    private readonly Channel<RelayEvent> _events;
    private readonly Channel<SubscriptionNotice> _notices = Channel.CreateBounded<SubscriptionNotice>(
        new BoundedChannelOptions(SideBufferCapacity) { FullMode = BoundedChannelFullMode.DropOldest });
    private readonly Channel<PresenceChange> _presence = Channel.CreateBounded<PresenceChange>(
        new BoundedChannelOptions(SideBufferCapacity) { FullMode = BoundedChannelFullMode.DropOldest });
    private readonly int _capacity;
    private readonly Task? _pump;
    private long _dropped;
    private long _notRecovered;
    private ulong _epoch;
    private ulong _lastSeq;
    private ulong _lastBufferedSeq;
    private int _ended;

    internal Subscription(FastRelayClient client, string topic, SubscribeOptions options, int capacity, Func<RelayEvent, ValueTask>? handler)
    {
        _client = client;
        Topic = topic;
        Options = options;
        IsPattern = TopicPattern.IsPattern(topic);
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

    /// <summary>The topic, or the pattern (<see cref="IsPattern"/>), subscribed to.</summary>
    public string Topic { get; }

    /// <summary>The consumer group this subscription is a member of (<see cref="SubscribeOptions.Group"/>), or null.</summary>
    public string? Group => Options.Group;

    /// <summary>True for a pattern subscription (<c>*</c> or <c>&gt;</c>): its events carry their concrete topics.</summary>
    public bool IsPattern { get; }

    /// <summary>The topic's current epoch: from the SUB ACK, then from each NOT_RECOVERED or epoch change (0 for patterns).</summary>
    public ulong Epoch => Volatile.Read(ref _epoch);

    /// <summary>The topic's last seq when the subscription started: the first event delivered has a higher seq (0 for patterns).</summary>
    public ulong StartSeq { get; private set; }

    /// <summary>The seq of the last event delivered into this subscription, or where a notice moved it (0 for patterns).</summary>
    public ulong LastSeq => Volatile.Read(ref _lastSeq);

    /// <summary>Where this subscription is in its topic's stream: keep it to resume later with <see cref="SubscribeOptions.ResumeFrom"/>.</summary>
    public StreamPosition Position => new(Epoch, LastSeq);

    /// <summary>Droppable events discarded because the buffer was full.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>How many <see cref="SubscriptionNotice"/>s this subscription has had (events it will never see).</summary>
    public long NotRecoveredCount => Interlocked.Read(ref _notRecovered);

    /// <summary>False once the subscription has ended (unsubscribed, closed, lost, slow consumer).</summary>
    public bool IsActive => Volatile.Read(ref _ended) == 0;

    /// <summary>
    /// Completes when the subscription has ended and every buffered event was consumed (for a callback subscription:
    /// handled); faults with the reason when it ended abnormally or the callback threw.
    /// </summary>
    public Task Completion => _pump ?? _events.Reader.Completion;

    internal SubscribeOptions Options { get; }

    /// <summary>
    /// Events were skipped that cannot be recovered (NOT_RECOVERED on a resume, a new epoch, or a gap that was not
    /// repaired); the subscription goes on. Raised in order, one handler call at a time, off the receive loop. A notice
    /// that comes with the SUB reply (<see cref="SubscribeOptions.ResumeFrom"/>) precedes any handler: read
    /// <see cref="ReadNoticesAsync"/>, which keeps it.
    /// </summary>
    public event EventHandler<SubscriptionNotice>? NotRecovered;

    /// <summary>
    /// A client joined or left this topic (PRESENCE announcements, for the topics the server announces). Raised like
    /// <see cref="NotRecovered"/>; <see cref="ReadPresenceAsync"/> also has the changes from before a handler was attached
    /// (the subscriber's own join comes right after the SUB reply).
    /// </summary>
    public event EventHandler<PresenceChange>? PresenceChanged;

    /// <summary>The events in seq order per topic. Ends when the subscription ends; throws the reason if it ended abnormally.</summary>
    public IAsyncEnumerable<RelayEvent> ReadAllAsync(CancellationToken ct = default)
    {
        if (_pump is not null)
        {
            throw new InvalidOperationException("This subscription delivers its events to a callback; ReadAllAsync is for subscriptions created without one.");
        }

        return _events.Reader.ReadAllAsync(ct);
    }

    /// <summary>
    /// The same notices as <see cref="NotRecovered"/>, as a stream (the last 1,024 are kept when nobody reads). Ends
    /// normally when the subscription ends.
    /// </summary>
    public IAsyncEnumerable<SubscriptionNotice> ReadNoticesAsync(CancellationToken ct = default) => _notices.Reader.ReadAllAsync(ct);

    /// <summary>
    /// The same changes as <see cref="PresenceChanged"/>, as a stream from the start of the subscription (the last 1,024
    /// are kept when nobody reads). Ends normally when the subscription ends.
    /// </summary>
    public IAsyncEnumerable<PresenceChange> ReadPresenceAsync(CancellationToken ct = default) => _presence.Reader.ReadAllAsync(ct);

    /// <summary>Stops delivery, ends the event stream normally and sends UNSUB when no other subscription of this client needs the topic.</summary>
    /// <exception cref="FastRelayException">The server refused the UNSUB (e.g. 404).</exception>
    public Task UnsubscribeAsync(CancellationToken ct = default) =>
        TryEnd(error: null) ? _client.UnsubscribeAsync(this, ct) : Task.CompletedTask;

    /// <summary>
    /// Acknowledges an event of a consumer group subscription (GROUP_ACK): the group will not redeliver it, and the member
    /// gets the credit back. Acknowledge after processing; an event not acknowledged within the server's lease, or held
    /// when this connection ends, goes to another member. Sends GROUP_ACK {topic = <see cref="RelayEvent.Topic"/> (the
    /// concrete topic, also for a pattern group), group, seq}.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not a group subscription.</exception>
    /// <exception cref="FastRelayException">
    /// 404: this member no longer holds the event (already acknowledged, or its lease expired and it was redelivered, or
    /// the connection it came on was lost).
    /// </exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public Task AckAsync(RelayEvent e, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (Options.Group is null)
        {
            throw new InvalidOperationException("AckAsync is for consumer group subscriptions (SubscribeOptions.Group).");
        }

        return _client.GroupAckAsync(this, e, ct);
    }

    /// <summary>
    /// Tells the group this member is still working on <paramref name="e"/> (GROUP_ACK with the in-progress flag): the
    /// event's lease starts again, so a job that runs longer than the server's lease is not handed to another member.
    /// Call it well within each lease; finish with <see cref="AckAsync"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not a group subscription.</exception>
    /// <exception cref="FastRelayException">404: this member no longer holds the event.</exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public Task ExtendLeaseAsync(RelayEvent e, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (Options.Group is null)
        {
            throw new InvalidOperationException("ExtendLeaseAsync is for consumer group subscriptions (SubscribeOptions.Group).");
        }

        return _client.GroupAckAsync(this, e, ct, inProgress: true);
    }

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

    /// <summary>Sets the position the stream starts after (from the SUB reply).</summary>
    internal void Activate(StreamPosition start)
    {
        Volatile.Write(ref _epoch, start.Epoch);
        Volatile.Write(ref _lastSeq, start.Seq);
        StartSeq = start.Seq;
        _lastBufferedSeq = start.Seq;
    }

    /// <summary>Buffers one event; runs on the receive loop and never waits.</summary>
    internal void Deliver(RelayEvent relayEvent)
    {
        if (Options.Group is not null)
        {
            // Group events come in turn and may be redelivered out of order: no duplicate filter, no position.
        }
        else if (!IsPattern)
        {
            // A second subscription to a topic starts at its own ACK: a replay in flight for the first one is older.
            if (relayEvent.Epoch == _epoch && relayEvent.Seq <= _lastSeq)
            {
                return;
            }

            Volatile.Write(ref _epoch, relayEvent.Epoch);
            Volatile.Write(ref _lastSeq, relayEvent.Seq);
        }

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

    /// <summary>Reports events that will never come, and moves a topic subscription past them (receive loop).</summary>
    internal void Notify(SubscriptionNotice notice)
    {
        if (!IsActive)
        {
            return;
        }

        if (!IsPattern)
        {
            Volatile.Write(ref _epoch, notice.Current.Epoch);
            Volatile.Write(ref _lastSeq, notice.Current.Seq);
        }

        Interlocked.Increment(ref _notRecovered);
        _notices.Writer.TryWrite(notice);
        _client.Raise(NotRecovered, this, notice);
    }

    internal void OnPresence(PresenceChange change)
    {
        if (IsActive)
        {
            _presence.Writer.TryWrite(change);
            _client.Raise(PresenceChanged, this, change);
        }
    }

    /// <summary>Ends the event stream once; returns false when it had already ended.</summary>
    internal bool TryEnd(Exception? error)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
        {
            return false;
        }

        _events.Writer.TryComplete(error);
        _notices.Writer.TryComplete();
        _presence.Writer.TryComplete();
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

    public override string ToString() => $"{(IsPattern ? "pattern" : "topic")} '{Topic}' at {Position}";
}
