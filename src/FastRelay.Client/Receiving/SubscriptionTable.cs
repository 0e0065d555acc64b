using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// The client's subscriptions: a <see cref="TopicRoute"/> per concrete topic (looked up by the event's UTF-8 topic
/// without allocating) and a <see cref="PatternRoute"/> per pattern. Topics seen only through patterns get a route on
/// their first event (it tracks their position), up to <see cref="MaxPatternOnlyTopics"/>.
/// </summary>
internal sealed class SubscriptionTable
{
    /// <summary>Topics tracked for pattern subscriptions alone; past that the tracking restarts (a cap on memory, not on delivery).</summary>
    internal const int MaxPatternOnlyTopics = 65_536;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, TopicRoute> _topics = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TopicRoute>.AlternateLookup<ReadOnlySpan<char>> _topicsByChars;
    private readonly Dictionary<string, PatternRoute> _patterns = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _subscribesInFlight = new(StringComparer.Ordinal);
    private readonly HashSet<string> _groupSubscribesInFlight = new(StringComparer.Ordinal);
    private PatternRoute[] _activePatterns = [];
    private int _patternVersion;
    private int _patternOnlyTopics;
    private bool _closed;

    public SubscriptionTable()
    {
        _topicsByChars = _topics.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>
    /// The route of an event's topic: the topic's own, or a new one when a pattern matches it. Refreshes the route's
    /// pattern subscriptions when patterns changed. False (no allocation) when nothing here wants the topic.
    /// </summary>
    public bool TryRoute(ReadOnlySpan<byte> topicUtf8, out TopicRoute route)
    {
        Span<char> chars = stackalloc char[ProtocolLimits.MaxTopicBytes];
        if (topicUtf8.Length > ProtocolLimits.MaxTopicBytes || !Encoding.UTF8.TryGetChars(topicUtf8, chars, out int count))
        {
            route = null!;
            return false;
        }

        lock (_lock)
        {
            if (_topicsByChars.TryGetValue(chars[..count], out route!))
            {
                if (route.PatternVersion != _patternVersion)
                {
                    route.ViaPatterns = Matching(topicUtf8);
                    route.PatternVersion = _patternVersion;
                }

                return true;
            }

            if (_activePatterns.Length == 0)
            {
                return false;
            }

            var viaPatterns = Matching(topicUtf8);
            if (viaPatterns.Length == 0)
            {
                return false;
            }

            if (_patternOnlyTopics >= MaxPatternOnlyTopics)
            {
                ForgetPatternOnlyTopics();
            }

            route = new TopicRoute(new string(chars[..count])) { ViaPatterns = viaPatterns, PatternVersion = _patternVersion };
            _topics.Add(route.Topic, route);
            _patternOnlyTopics++;
            return true;
        }
    }

    /// <summary>The route of a topic that has subscriptions of its own (presence announcements go to those).</summary>
    public bool TryGetExact(ReadOnlySpan<byte> topicUtf8, out TopicRoute route)
    {
        Span<char> chars = stackalloc char[ProtocolLimits.MaxTopicBytes];
        route = null!;
        if (topicUtf8.Length > ProtocolLimits.MaxTopicBytes || !Encoding.UTF8.TryGetChars(topicUtf8, chars, out int count))
        {
            return false;
        }

        lock (_lock)
        {
            return _topicsByChars.TryGetValue(chars[..count], out route!) && route.Exact.Length > 0;
        }
    }

    /// <summary>True while some subscription of this client needs <paramref name="topic"/> (a topic or a pattern).</summary>
    public bool Contains(string topic)
    {
        lock (_lock)
        {
            return (_topics.TryGetValue(topic, out var route) && route.Exact.Length > 0) || _patterns.ContainsKey(topic);
        }
    }

    /// <summary>Counts a SUB for <paramref name="topic"/> on its way (so a late reply to a cancelled one knows whether to UNSUB).</summary>
    /// <exception cref="ArgumentException">
    /// A group subscription for a topic that has (or is getting) any other subscription, or any subscription for a topic
    /// that has (or is getting) a group subscription.
    /// </exception>
    public void SubscribeSent(string topic, string? group = null)
    {
        lock (_lock)
        {
            var live = _topics.TryGetValue(topic, out var route) && route.Exact.Length > 0 ? route : null;
            bool hasGroup = _groupSubscribesInFlight.Contains(topic) || live?.Group is not null;
            bool hasAny = _subscribesInFlight.ContainsKey(topic) || live is not null;
            if (hasGroup || (group is not null && hasAny))
            {
                throw new ArgumentException(
                    $"Topic '{topic}' cannot have a consumer group subscription and another subscription (plain or group) in the same client.", "options");
            }

            _subscribesInFlight[topic] = _subscribesInFlight.GetValueOrDefault(topic) + 1;
            if (group is not null)
            {
                _groupSubscribesInFlight.Add(topic);
            }
        }
    }

    /// <summary>A SUB for <paramref name="topic"/> was answered or failed; returns how many are still on their way.</summary>
    public int SubscribeDone(string topic)
    {
        lock (_lock)
        {
            int left = _subscribesInFlight.GetValueOrDefault(topic) - 1;
            if (left <= 0)
            {
                _subscribesInFlight.Remove(topic);
                _groupSubscribesInFlight.Remove(topic);
                return 0;
            }

            _subscribesInFlight[topic] = left;
            return left;
        }
    }

    /// <summary>
    /// Adds a subscription the server acknowledged at <paramref name="start"/>. The topic's first subscription binds the
    /// route to <paramref name="connection"/> and sets its position; false when the table is closed.
    /// </summary>
    public bool AttachTopic(Subscription subscription, ClientConnection connection, StreamPosition start)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            if (!_topics.TryGetValue(subscription.Topic, out var route))
            {
                route = new TopicRoute(subscription.Topic) { ViaPatterns = Matching(Encoding.UTF8.GetBytes(subscription.Topic)), PatternVersion = _patternVersion };
                _topics.Add(route.Topic, route);
            }
            else if (route.Exact.Length == 0)
            {
                _patternOnlyTopics--;
            }

            if (route.Exact.Length == 0)
            {
                route.Connection = connection;
                route.PresenceInfo = subscription.Options.PresenceInfo?.ToArray(); // resent on every resubscribe: a copy the caller cannot change
                route.RepairGaps = subscription.Options.RepairGaps;
                route.Group = subscription.Options.Group;
                route.Credits = subscription.Options.Credits;
                route.Resuming = false;
                // Events that reached the topic through a pattern before the ACK are already delivered.
                if (!route.HasPosition || route.Epoch != start.Epoch || route.LastSeq < start.Seq)
                {
                    route.MoveTo(start);
                }
            }
            else
            {
                route.RepairGaps |= subscription.Options.RepairGaps;
            }

            route.Exact = [.. route.Exact, subscription];
            return true;
        }
    }

    /// <summary>Removes a topic subscription; returns its route when it was the topic's last one (time to send UNSUB).</summary>
    public TopicRoute? DetachTopic(Subscription subscription)
    {
        lock (_lock)
        {
            if (!_topics.TryGetValue(subscription.Topic, out var route) || Array.IndexOf(route.Exact, subscription) < 0)
            {
                return null;
            }

            if (route.Exact.Length > 1)
            {
                route.Exact = Array.FindAll(route.Exact, s => !ReferenceEquals(s, subscription));
                return null;
            }

            // Events still in flight find no route, or start a fresh pattern-only one.
            route.Exact = [];
            _topics.Remove(route.Topic);
            return route;
        }
    }

    /// <summary>Removes a topic's route with all its subscriptions (its resubscribe was refused) and returns them.</summary>
    public Subscription[] DetachRoute(TopicRoute route)
    {
        lock (_lock)
        {
            if (!_topics.TryGetValue(route.Topic, out var current) || !ReferenceEquals(current, route))
            {
                return [];
            }

            var removed = route.Exact;
            route.Exact = [];
            _topics.Remove(route.Topic);
            return removed;
        }
    }

    /// <summary>True while <paramref name="route"/> is the table's route for its topic and has subscriptions of its own.</summary>
    public bool IsAttached(TopicRoute route)
    {
        lock (_lock)
        {
            return route.Exact.Length > 0 && _topics.TryGetValue(route.Topic, out var current) && ReferenceEquals(current, route);
        }
    }

    public bool TryGetPattern(string pattern, out PatternRoute route)
    {
        lock (_lock)
        {
            return _patterns.TryGetValue(pattern, out route!);
        }
    }

    /// <summary>Registers a pattern whose first SUB is about to go out; null when the table is closed.</summary>
    public PatternRoute? AddPattern(string pattern, ClientConnection connection, string? group = null, int? credits = null)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return null;
            }

            var route = new PatternRoute(pattern) { Connection = connection, Group = group, Credits = credits };
            _patterns.Add(pattern, route);
            return route;
        }
    }

    /// <summary>Adds a subscription to an acknowledged pattern; false when the table is closed or the pattern is gone.</summary>
    public bool AttachPattern(PatternRoute route, Subscription subscription)
    {
        lock (_lock)
        {
            if (_closed || !_patterns.TryGetValue(route.Pattern, out var current) || !ReferenceEquals(current, route))
            {
                return false;
            }

            route.Subscriptions = [.. route.Subscriptions, subscription];
            PatternsChanged();
            return true;
        }
    }

    /// <summary>Removes a pattern subscription; returns its route when it was the pattern's last one (time to send UNSUB).</summary>
    public PatternRoute? DetachPattern(Subscription subscription)
    {
        lock (_lock)
        {
            if (!_patterns.TryGetValue(subscription.Topic, out var route) || Array.IndexOf(route.Subscriptions, subscription) < 0)
            {
                return null;
            }

            route.Subscriptions = Array.FindAll(route.Subscriptions, s => !ReferenceEquals(s, subscription));
            if (route.Subscriptions.Length > 0)
            {
                PatternsChanged();
                return null;
            }

            _patterns.Remove(route.Pattern);
            PatternsChanged();
            return route;
        }
    }

    /// <summary>
    /// Removes a pattern whose SUB failed or was refused, or that lost its last subscription before the ACK; false when
    /// it was no longer in the table. <paramref name="removed"/> gets its subscriptions.
    /// </summary>
    public bool RemovePattern(PatternRoute route, out Subscription[] removed)
    {
        lock (_lock)
        {
            removed = [];
            if (!_patterns.TryGetValue(route.Pattern, out var current) || !ReferenceEquals(current, route))
            {
                return false;
            }

            removed = route.Subscriptions;
            route.Subscriptions = [];
            _patterns.Remove(route.Pattern);
            PatternsChanged();
            return true;
        }
    }

    /// <summary>
    /// For a new connection: binds every route to it, marks the topics as resuming (events wait for the resume's reply),
    /// and returns what to resubscribe: each topic from its last position, each acknowledged pattern.
    /// </summary>
    public (TopicRoute[] Topics, PatternRoute[] Patterns) BeginResume(ClientConnection connection)
    {
        lock (_lock)
        {
            var topics = _topics.Values.Where(static r => r.Exact.Length > 0).ToArray();
            foreach (var route in topics)
            {
                route.Connection = connection;
                route.Resuming = true;
            }

            var patterns = _patterns.Values.Where(static p => p.IsActive).ToArray();
            foreach (var pattern in patterns)
            {
                pattern.Connection = connection;
            }

            _subscribesInFlight.Clear();
            _groupSubscribesInFlight.Clear();
            return (topics, patterns);
        }
    }

    /// <summary>Ends every subscription (normally when <paramref name="error"/> is null) and refuses new ones.</summary>
    public void EndAll(Exception? error)
    {
        Subscription[] all;
        PatternRoute[] pending;
        lock (_lock)
        {
            _closed = true;
            all = [.. _topics.Values.SelectMany(static r => r.Exact), .. _patterns.Values.SelectMany(static p => p.Subscriptions)];
            pending = [.. _patterns.Values.Where(static p => !p.IsActive)];
            _topics.Clear();
            _patterns.Clear();
            PatternsChanged();
        }

        foreach (var pattern in pending)
        {
            pattern.Fail(error ?? new FastRelayConnectionException(ErrorCode.None, "the client closed"));
        }

        foreach (var subscription in all)
        {
            subscription.TryEnd(error);
        }
    }

    private Subscription[] Matching(ReadOnlySpan<byte> topicUtf8)
    {
        Subscription[]? matching = null;
        foreach (var pattern in _activePatterns)
        {
            if (pattern.Matcher.Matches(topicUtf8))
            {
                matching = matching is null ? pattern.Subscriptions : [.. matching, .. pattern.Subscriptions];
            }
        }

        return matching ?? [];
    }

    private void PatternsChanged()
    {
        _activePatterns = [.. _patterns.Values.Where(static p => p.Subscriptions.Length > 0)];
        _patternVersion++;
        if (_activePatterns.Length == 0 && _patternOnlyTopics > 0)
        {
            ForgetPatternOnlyTopics();
        }
    }

    private void ForgetPatternOnlyTopics()
    {
        foreach (var route in _topics.Values.Where(static r => r.Exact.Length == 0).ToArray())
        {
            _topics.Remove(route.Topic);
        }

        _patternOnlyTopics = 0;
    }
}
