using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Subscribes to a topic, or to a pattern (<c>agents.*.tasks</c>: <c>*</c> is one segment, a final <c>&gt;</c> the
    /// rest); read the events with <see cref="Subscription.ReadAllAsync"/>. Events published after the ACK (seq greater
    /// than <see cref="Subscription.StartSeq"/>) are delivered in order.
    /// </summary>
    /// <exception cref="FastRelayException">The server refused the SUB (400, 403, 429).</exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public Task<Subscription> SubscribeAsync(string topic, CancellationToken ct = default) =>
        SubscribeAsync(topic, SubscribeOptions.Default, ct);

    /// <inheritdoc cref="SubscribeAsync(string, CancellationToken)"/>
    public Task<Subscription> SubscribeAsync(string topic, SubscribeOptions options, CancellationToken ct = default)
    {
        ValidateSubscribe(topic, options);
        return SubscribeCoreAsync(topic, options, handler: null, ct);
    }

    /// <summary>
    /// Subscribes and hands each event to <paramref name="handler"/>, one at a time, in order, on the thread pool. A handler
    /// that throws ends the subscription (and its <see cref="Subscription.Completion"/> carries the exception).
    /// </summary>
    public Task<Subscription> SubscribeAsync(string topic, Func<RelayEvent, ValueTask> handler, CancellationToken ct = default) =>
        SubscribeAsync(topic, SubscribeOptions.Default, handler, ct);

    /// <inheritdoc cref="SubscribeAsync(string, Func{RelayEvent, ValueTask}, CancellationToken)"/>
    public Task<Subscription> SubscribeAsync(string topic, SubscribeOptions options, Func<RelayEvent, ValueTask> handler, CancellationToken ct = default)
    {
        ValidateSubscribe(topic, options);
        ArgumentNullException.ThrowIfNull(handler);
        return SubscribeCoreAsync(topic, options, handler, ct);
    }

    /// <inheritdoc cref="SubscribeAsync(string, Func{RelayEvent, ValueTask}, CancellationToken)"/>
    public Task<Subscription> SubscribeAsync(string topic, Action<RelayEvent> handler, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return SubscribeAsync(topic, relayEvent =>
        {
            handler(relayEvent);
            return ValueTask.CompletedTask;
        }, ct);
    }

    private async Task<Subscription> SubscribeCoreAsync(string topic, SubscribeOptions options, Func<RelayEvent, ValueTask>? handler, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var connection = Usable() ?? throw NotConnected();
        var subscription = new Subscription(this, topic, options, _options.SubscriptionBufferCapacity, handler);
        try
        {
            return subscription.IsPattern
                ? await SubscribePatternAsync(connection, subscription, ct).ConfigureAwait(false)
                : await SubscribeTopicAsync(connection, subscription, ct).ConfigureAwait(false);
        }
        catch
        {
            // Cancelled or failed: if the reply won the race the subscription is live, so take it down again.
            Observe(subscription.UnsubscribeAsync(CancellationToken.None));
            throw;
        }
    }

    private Task<Subscription> SubscribeTopicAsync(ClientConnection connection, Subscription subscription, CancellationToken ct)
    {
        var request = new SubscribeRequest(connection.Pending.NextId(), this, connection, subscription);
        var sub = new Envelope(FrameType.Sub).WithRequestId(request.RequestId).WithTopic(subscription.Topic);
        if (subscription.Options.ResumeFrom is { } from)
        {
            sub = sub.WithEpoch(from.Epoch).WithSeq(from.Seq);
        }

        if (subscription.Options.PresenceInfo is { } info)
        {
            sub = sub.WithPayload(info);
        }

        sub = WithGroup(sub, subscription.Options.Group, subscription.Options.Credits);
        var frame = EncodeControl(sub);
        Task<Subscription> reply;
        lock (_control)
        {
            _subscriptions.SubscribeSent(subscription.Topic, subscription.Options.Group);
            reply = connection.Enqueue(request, frame, holdsSlot: false, CancellationToken.None);
        }

        // Cancelling stops the wait only: the reply still comes, and a late one for a subscription given up is undone.
        return reply.WaitAsync(ct);
    }

    /// <summary>
    /// The server answered a topic SUB (receive loop): the subscription goes live from the reply's position (RECOVERED:
    /// from the position it resumed from; the replay follows). False when the client is closing.
    /// </summary>
    internal bool OnTopicSubscribed(ClientConnection connection, Subscription subscription, in Envelope reply)
    {
        var current = new StreamPosition(reply.Epoch, reply.Seq);
        var resumedFrom = subscription.Options.ResumeFrom;
        var start = reply.Type == FrameType.Recovered && resumedFrom is { } from ? from : current;
        lock (_control)
        {
            int stillInFlight = _subscriptions.SubscribeDone(subscription.Topic);
            if (!subscription.IsActive)
            {
                // The caller gave up before the reply. Unless another subscription of the topic is live or on its way,
                // the server must forget the topic again.
                if (stillInFlight == 0 && !_subscriptions.Contains(subscription.Topic) && connection.IsOpen)
                {
                    Observe(SendUnsubscribe(connection, subscription.Topic, CancellationToken.None, subscription.Options.Group));
                }

                return true;
            }

            subscription.Activate(start);
            if (!_subscriptions.AttachTopic(subscription, connection, start))
            {
                return false;
            }
        }

        if (reply.Type == FrameType.NotRecovered && resumedFrom is { } expected)
        {
            subscription.Notify(new SubscriptionNotice(subscription.Topic, SubscriptionNoticeKind.NotRecovered, expected, current));
        }

        return true;
    }

    internal void OnSubscribeAnswered(string topic)
    {
        lock (_control)
        {
            _subscriptions.SubscribeDone(topic);
        }
    }

    private async Task<Subscription> SubscribePatternAsync(ClientConnection connection, Subscription subscription, CancellationToken ct)
    {
        // One SUB per pattern and connection: later subscriptions to the same pattern wait for it and join locally.
        while (true)
        {
            Task ready;
            lock (_control)
            {
                if (_subscriptions.TryGetPattern(subscription.Topic, out var existing))
                {
                    if (existing.Group is not null || subscription.Options.Group is not null)
                    {
                        throw new ArgumentException(
                            $"Pattern '{subscription.Topic}' cannot have a consumer group subscription and another subscription (plain or group) in the same client.", "options");
                    }

                    if (existing.IsActive)
                    {
                        subscription.Activate(default);
                        return _subscriptions.AttachPattern(existing, subscription) ? subscription : throw NotConnected();
                    }

                    ready = existing.Ready;
                }
                else
                {
                    var route = _subscriptions.AddPattern(subscription.Topic, connection, subscription.Options.Group, subscription.Options.Credits) ?? throw NotConnected();
                    var request = new PatternSubscribeRequest(connection.Pending.NextId(), this, connection, route, subscription);
                    var frame = EncodeControl(PatternSub(request.RequestId, route));
                    ready = connection.Enqueue(request, frame, holdsSlot: false, CancellationToken.None);
                }
            }

            await ready.WaitAsync(ct).ConfigureAwait(false);
            if (ready is Task<Subscription?> { Result: { } mine } && ReferenceEquals(mine, subscription))
            {
                return subscription;
            }
        }
    }

    /// <summary>The server acknowledged a pattern's first SUB (receive loop): the pattern and its first subscription go live.</summary>
    internal bool OnPatternSubscribed(ClientConnection connection, PatternRoute route, Subscription subscription)
    {
        lock (_control)
        {
            route.Activate();
            if (subscription.IsActive)
            {
                subscription.Activate(default);
                return _subscriptions.AttachPattern(route, subscription);
            }

            // The caller gave up before the ACK; unless someone else joined meanwhile, unsubscribe the pattern again.
            if (route.Subscriptions.Length == 0 && _subscriptions.RemovePattern(route, out _) && connection.IsOpen)
            {
                Observe(SendUnsubscribe(connection, route.Pattern, CancellationToken.None, route.Group));
            }

            return true;
        }
    }

    /// <summary>The server refused a pattern SUB, or it failed: a first SUB takes the pattern away; a resubscribe ends its subscriptions.</summary>
    internal void OnPatternRefused(PatternRoute route, Exception error, bool firstSubscribe)
    {
        Subscription[] ended;
        lock (_control)
        {
            _subscriptions.RemovePattern(route, out ended);
        }

        route.Fail(error);
        if (!firstSubscribe)
        {
            foreach (var subscription in ended)
            {
                subscription.TryEnd(error);
            }
        }
    }

    /// <summary>Removes a subscription that ended locally and sends UNSUB when it was the topic's (or pattern's) last one.</summary>
    internal Task UnsubscribeAsync(Subscription subscription, CancellationToken ct)
    {
        lock (_control)
        {
            ClientConnection? connection;
            if (subscription.IsPattern)
            {
                var route = _subscriptions.DetachPattern(subscription);
                connection = route is { IsActive: true } ? route.Connection : null;
            }
            else
            {
                connection = _subscriptions.DetachTopic(subscription)?.Connection;
            }

            // A topic bound to a connection that is gone has nothing to undo on the server.
            return connection is { IsOpen: true } ? SendUnsubscribe(connection, subscription.Topic, ct, subscription.Options.Group) : Task.CompletedTask;
        }
    }

    private Task<bool> SendUnsubscribe(ClientConnection connection, string topic, CancellationToken ct, string? group = null)
    {
        var request = new AckRequest(connection.Pending.NextId(), group is null ? $"UNSUB from '{topic}'" : $"UNSUB from '{topic}' (leaving group '{group}')");
        var unsub = new Envelope(FrameType.Unsub).WithRequestId(request.RequestId).WithTopic(topic);
        var frame = EncodeControl(group is null ? unsub : unsub.WithGroup(group));
        return connection.Enqueue(request, frame, holdsSlot: false, ct);
    }

    /// <summary>SUB for a pattern; a pattern group's carries its group and credits.</summary>
    internal static Envelope PatternSub(ulong requestId, PatternRoute route) =>
        WithGroup(new Envelope(FrameType.Sub).WithRequestId(requestId).WithTopic(route.Pattern), route.Group, route.Credits);

    /// <summary>Adds the consumer group fields (16 group, 20 credits) to a SUB when there is a group.</summary>
    private static Envelope WithGroup(Envelope sub, string? group, int? credits)
    {
        if (group is null)
        {
            return sub;
        }

        sub = sub.WithGroup(group);
        return credits is { } c ? sub.WithCredits((uint)c) : sub;
    }

    /// <summary>
    /// GROUP_ACK {topic, group, seq} for an event of a group subscription, with a request id (ACK or ERROR 404). The topic is
    /// the event's own (for a pattern group, the concrete topic that matched): the server finds the group from it.
    /// </summary>
    internal Task GroupAckAsync(Subscription subscription, RelayEvent relayEvent, CancellationToken ct, bool inProgress = false)
    {
        if (Usable() is not { } connection)
        {
            return Task.FromException(NotConnected());
        }

        var request = new AckRequest(connection.Pending.NextId(),
            $"GROUP_ACK{(inProgress ? " (in progress)" : "")} of '{relayEvent.Topic}' seq {relayEvent.Seq} (group '{subscription.Options.Group}')");
        var ack = new Envelope(FrameType.GroupAck).WithRequestId(request.RequestId).WithTopic(relayEvent.Topic)
            .WithGroup(subscription.Options.Group!).WithSeq(relayEvent.Seq);
        if (inProgress)
        {
            ack = ack.WithFlags(EventFlags.InProgress);
        }

        var frame = EncodeControl(ack);
        return connection.Enqueue(request, frame, holdsSlot: false, ct);
    }

    /// <summary>A subscription's buffer overflowed with a critical event: end it (never block the receive loop) and unsubscribe.</summary>
    internal void OnSlowConsumer(Subscription subscription, FastRelaySlowConsumerException error)
    {
        if (subscription.TryEnd(error))
        {
            Observe(UnsubscribeAsync(subscription, CancellationToken.None));
        }
    }

    private static void ValidateSubscribe(string topic, SubscribeOptions options)
    {
        ValidateTopic(topic);
        ArgumentNullException.ThrowIfNull(options);
        if (TopicPattern.IsPattern(topic) && (options.PresenceInfo is not null || options.ResumeFrom is not null))
        {
            throw new ArgumentException("A pattern subscription takes neither PresenceInfo nor ResumeFrom (patterns cannot resume; presence is per topic).", nameof(options));
        }

        if (options.Group is null)
        {
            if (options.Credits is not null)
            {
                throw new ArgumentException("Credits are for consumer group subscriptions (set Group).", nameof(options));
            }

            return;
        }

        if (options.Group.Length == 0 || Utf8Text.ByteCount(options.Group, ProtocolLimits.MaxIdBytes) > ProtocolLimits.MaxIdBytes)
        {
            throw new ArgumentException($"The group name must be 1 to {ProtocolLimits.MaxIdBytes} UTF-8 bytes.", nameof(options));
        }

        if (options.ResumeFrom is not null || options.PresenceInfo is not null)
        {
            throw new ArgumentException("A consumer group subscription takes neither ResumeFrom nor PresenceInfo.", nameof(options));
        }

        if (options.Credits is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Credits, "Credits must be at least 1.");
        }
    }
}
