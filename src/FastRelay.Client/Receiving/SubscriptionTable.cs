using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// Live subscriptions by topic. Each topic maps to an immutable array (copy on write), so the receive loop looks an
/// event's topic up by its UTF-8 bytes without allocating, and delivers outside the lock.
/// </summary>
internal sealed class SubscriptionTable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Subscription[]> _byTopic = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Subscription[]>.AlternateLookup<ReadOnlySpan<char>> _byTopicChars;
    private bool _closed;

    public SubscriptionTable()
    {
        _byTopicChars = _byTopic.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public bool TryAdd(Subscription subscription)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _byTopic[subscription.Topic] = _byTopic.TryGetValue(subscription.Topic, out var existing)
                ? [.. existing, subscription]
                : [subscription];
            return true;
        }
    }

    /// <summary>Removes <paramref name="subscription"/>; true when it was the topic's last one (time to send UNSUB).</summary>
    public bool Remove(Subscription subscription)
    {
        lock (_lock)
        {
            if (!_byTopic.TryGetValue(subscription.Topic, out var existing) || Array.IndexOf(existing, subscription) < 0)
            {
                return false;
            }

            if (existing.Length == 1)
            {
                _byTopic.Remove(subscription.Topic);
                return true;
            }

            _byTopic[subscription.Topic] = Array.FindAll(existing, s => !ReferenceEquals(s, subscription));
            return false;
        }
    }

    /// <summary>True while some subscription of this client still needs <paramref name="topic"/>.</summary>
    public bool Contains(string topic)
    {
        lock (_lock)
        {
            return _byTopic.ContainsKey(topic);
        }
    }

    /// <summary>The subscriptions of a topic given as UTF-8, and the topic string they share (no allocation).</summary>
    public bool TryGet(ReadOnlySpan<byte> topicUtf8, out string topic, out Subscription[] subscriptions)
    {
        Span<char> chars = stackalloc char[ProtocolLimits.MaxTopicBytes];
        if (topicUtf8.Length > ProtocolLimits.MaxTopicBytes
            || !Encoding.UTF8.TryGetChars(topicUtf8, chars, out int count))
        {
            topic = string.Empty;
            subscriptions = [];
            return false;
        }

        lock (_lock)
        {
            return _byTopicChars.TryGetValue(chars[..count], out topic!, out subscriptions!);
        }
    }

    /// <summary>Ends every subscription (normally when <paramref name="error"/> is null) and refuses new ones.</summary>
    public void EndAll(Exception? error)
    {
        Subscription[] all;
        lock (_lock)
        {
            _closed = true;
            all = [.. _byTopic.Values.SelectMany(static s => s)];
            _byTopic.Clear();
        }

        foreach (var subscription in all)
        {
            subscription.TryEnd(error);
        }
    }
}
