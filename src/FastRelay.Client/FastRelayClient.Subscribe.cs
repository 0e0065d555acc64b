using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Subscribes to <paramref name="topic"/>; read the events with <see cref="Subscription.ReadAllAsync"/>.
    /// Events published after the ACK (seq greater than <see cref="Subscription.StartSeq"/>) are delivered in order.
    /// </summary>
    /// <exception cref="FastRelayException">The server refused the SUB (400, 403, 429).</exception>
    public Task<Subscription> SubscribeAsync(string topic, CancellationToken ct = default)
    {
        ValidateTopic(topic);
        return SubscribeCoreAsync(topic, handler: null, ct);
    }

    /// <summary>
    /// Subscribes and hands each event to <paramref name="handler"/>, one at a time, in order, on the thread pool. A handler
    /// that throws ends the subscription (and its <see cref="Subscription.Completion"/> carries the exception).
    /// </summary>
    public Task<Subscription> SubscribeAsync(string topic, Func<RelayEvent, ValueTask> handler, CancellationToken ct = default)
    {
        ValidateTopic(topic);
        ArgumentNullException.ThrowIfNull(handler);
        return SubscribeCoreAsync(topic, handler, ct);
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

    private async Task<Subscription> SubscribeCoreAsync(string topic, Func<RelayEvent, ValueTask>? handler, CancellationToken ct)
    {
        var subscription = new Subscription(this, topic, _options.SubscriptionBufferCapacity, handler);
        var request = new SubscribeRequest(_pending.NextId(), subscription, _subscriptions);
        var frame = EncodeControl(new Envelope(FrameType.Sub).WithRequestId(request.RequestId).WithTopic(topic));
        try
        {
            return await Enqueue(request, frame, holdsSlot: false, ct).ConfigureAwait(false);
        }
        catch
        {
            // Cancelled or failed: if the ACK won the race the subscription is live, so take it down again.
            Observe(subscription.UnsubscribeAsync(CancellationToken.None));
            throw;
        }
    }

    /// <summary>Removes a subscription that ended locally and sends UNSUB when it was the topic's last one.</summary>
    internal Task UnsubscribeAsync(Subscription subscription, CancellationToken ct)
    {
        if (!_subscriptions.Remove(subscription) || !IsConnected)
        {
            return Task.CompletedTask;
        }

        var request = new AckRequest(_pending.NextId(), $"UNSUB from '{subscription.Topic}'");
        var frame = EncodeControl(new Envelope(FrameType.Unsub).WithRequestId(request.RequestId).WithTopic(subscription.Topic));
        return Enqueue(request, frame, holdsSlot: false, ct);
    }

    /// <summary>A subscription's buffer overflowed with a critical event: end it (never block the receive loop) and unsubscribe.</summary>
    internal void OnSlowConsumer(Subscription subscription, FastRelaySlowConsumerException error)
    {
        if (subscription.TryEnd(error))
        {
            Observe(UnsubscribeAsync(subscription, CancellationToken.None));
        }
    }

    /// <summary>Keeps a fire-and-forget task's failure from surfacing as an unobserved exception.</summary>
    private static void Observe(Task task)
    {
        if (!task.IsCompleted || task.IsFaulted)
        {
            task.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }
}
