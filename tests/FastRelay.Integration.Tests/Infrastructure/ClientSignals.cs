using System.Threading.Channels;
using FastRelay.Client;

namespace FastRelay.Integration.Tests.Infrastructure;

/// <summary>Awaiting what a client does, with a timeout instead of sleeps.</summary>
internal static class ClientSignals
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Reconnects at once in tests (a few ms of backoff), without limit.</summary>
    public static readonly ReconnectOptions FastReconnect = new()
    {
        Enabled = true,
        InitialDelay = TimeSpan.FromMilliseconds(5),
        MaxDelay = TimeSpan.FromMilliseconds(100),
    };

    public static Task<T> Within<T>(this Task<T> task) => task.WaitAsync(Timeout);

    public static Task Within(this Task task) => task.WaitAsync(Timeout);

    public static async Task<List<RelayEvent>> TakeAsync(this Subscription subscription, int count)
    {
        var events = new List<RelayEvent>(count);
        if (count == 0)
        {
            return events;
        }

        using var timeout = new CancellationTokenSource(Timeout);
        await foreach (var relayEvent in subscription.ReadAllAsync(timeout.Token))
        {
            events.Add(relayEvent);
            if (events.Count == count)
            {
                break;
            }
        }

        return events;
    }

    public static async Task<RelayEvent> NextAsync(this Subscription subscription) => (await subscription.TakeAsync(1))[0];

    /// <summary>The next notice of a subscription.</summary>
    public static async Task<SubscriptionNotice> NextNoticeAsync(this Subscription subscription)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await foreach (var notice in subscription.ReadNoticesAsync(timeout.Token))
        {
            return notice;
        }

        throw new InvalidOperationException("the subscription ended without a notice");
    }

    /// <summary>Completes on the client's next <see cref="FastRelayClient.Reconnected"/>.</summary>
    public static Task<ReconnectedInfo> NextReconnectAsync(this FastRelayClient client)
    {
        var reconnected = new TaskCompletionSource<ReconnectedInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        EventHandler<ReconnectedInfo>? handler = null;
        handler = (_, info) =>
        {
            client.Reconnected -= handler;
            reconnected.TrySetResult(info);
        };
        client.Reconnected += handler;
        return reconnected.Task.WaitAsync(Timeout);
    }

    /// <summary>The next presence change of a subscription.</summary>
    public static async Task<PresenceChange> NextPresenceAsync(this Subscription subscription)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await foreach (var change in subscription.ReadPresenceAsync(timeout.Token))
        {
            return change;
        }

        throw new InvalidOperationException("the subscription ended without a presence change");
    }

    public static Task<T> NextAsync<T>(this ChannelReader<T> reader) => reader.ReadAsync().AsTask().WaitAsync(Timeout);
}

/// <summary>
/// Holds a client's reconnect attempts until the test releases them: the client stays disconnected while the test
/// publishes, lets the server forget a topic, and so on.
/// </summary>
internal sealed class ReconnectGate
{
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ReconnectGate(FastRelayClient client)
    {
        client.BeforeReconnectForTest = async ct =>
        {
            _reached.TrySetResult();
            await _released.Task.WaitAsync(ct);
        };
    }

    /// <summary>Completes when the client noticed the drop and is about to reconnect.</summary>
    public Task Reached => _reached.Task.WaitAsync(ClientSignals.Timeout);

    public void Release() => _released.TrySetResult();
}
