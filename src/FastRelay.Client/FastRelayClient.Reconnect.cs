using System.Diagnostics;
using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>The last DRAIN (with Reconnect on): which connection got it and when; cleared once a reconnect completes.</summary>
    private DrainState? _drain;

    private sealed record DrainState(DrainNotice Notice, ClientConnection Connection);

    /// <summary>True when <paramref name="connection"/> received DRAIN: no new publish goes to it.</summary>
    private bool IsDraining(ClientConnection connection) => Volatile.Read(ref _drain) is { } drain && ReferenceEquals(drain.Connection, connection);

    /// <summary>A DRAIN was received and the reconnect it announced has not completed yet.</summary>
    private bool AwaitingDrainReconnect => Volatile.Read(ref _drain) is not null && Volatile.Read(ref _state) is StateConnected or StateReconnecting;

    /// <summary>
    /// A connection ended. While connected, that either ends the client (reconnect off, closed by the client, 401) or
    /// starts reconnecting; in any other state the code that owns the transition (ConnectAsync, CloseAsync, the reconnect
    /// loop) deals with it.
    /// </summary>
    private void OnConnectionEnded(ClientConnection connection, DisconnectInfo info)
    {
        bool reconnect;
        lock (_stateLock)
        {
            if (!ReferenceEquals(connection, _connection) || _state != StateConnected)
            {
                return;
            }

            reconnect = _options.Reconnect.Enabled && !info.ByClient && info.ErrorCode != ErrorCode.Unauthorized;
            if (reconnect)
            {
                _state = StateReconnecting;
                _lost = info;
                _connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _reconnecting = Task.Run(() => ReconnectAsync(info));
            }
            else
            {
                _state = StateClosing;
            }
        }

        if (reconnect)
        {
            Raise(ConnectionLost, this, info);
        }
        else
        {
            EndClient(info);
        }
    }

    /// <summary>
    /// Reconnects with exponential backoff and jitter until a new connection is up and every subscription is resumed,
    /// the client is closed, a 401 ends it, or <see cref="ReconnectOptions.MaxAttempts"/> is spent.
    /// </summary>
    private async Task ReconnectAsync(DisconnectInfo reason)
    {
        long started = Stopwatch.GetTimestamp();
        var policy = _options.Reconnect;
        var ct = _stopReconnecting.Token;
        FastRelayException lastError = reason.Exception ?? new FastRelayConnectionException(reason.ErrorCode, reason.Reason);
        for (int attempt = 0; ; attempt++)
        {
            // The previous connection's receive loop must be finished: resuming reads the positions it wrote.
            if (_connection is { } previous)
            {
                await previous.Released.ConfigureAwait(false);
            }

            if (policy.MaxAttempts is { } max && attempt >= max)
            {
                GiveUp(new FastRelayConnectionException(lastError.ErrorCode,
                    $"gave up reconnecting after {attempt} attempts; last error: {lastError.Reason}", lastError));
                return;
            }

            ClientConnection? connection = null;
            try
            {
                var delay = policy.DelayBefore(attempt, Random.Shared.NextDouble());
                var endpoint = _home;
                if (attempt == 0 && Volatile.Read(ref _drain) is { } drain && ReferenceEquals(drain.Connection, _connection))
                {
                    // A drain, not a failure: come back when the server said (its delay is already randomised to spread
                    // the crowd), to the node it suggested when that is a URL. The delay counts from the close, not from
                    // the DRAIN: a server that takes its drain window to flush closes every connection at about the
                    // same moment, and delays counted from the DRAIN would all have run out by then (one storm).
                    delay = drain.Notice.RetryAfter;
                    endpoint = DrainTarget(drain.Notice) ?? _home;
                }

                if (delay > TimeSpan.Zero)
                {
                    await (ReconnectDelayForTest?.Invoke(delay, ct) ?? Task.Delay(delay, ct)).ConfigureAwait(false);
                }

                if (BeforeReconnectForTest is { } gate)
                {
                    await gate(ct).ConfigureAwait(false);
                }

                Endpoint = endpoint;
                connection = await OpenConnectionAsync(ct).ConfigureAwait(false);
                if (await ResumeAsync(connection, ct).ConfigureAwait(false) && TryCompleteReconnect(connection))
                {
                    _home = endpoint;
                    Raise(Reconnected, this, new ReconnectedInfo(attempt + 1, Stopwatch.GetElapsedTime(started), Node));
                    return;
                }

                connection.Abort(error: null);
                lastError = (await connection.Ended.ConfigureAwait(false)).Exception ?? lastError;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                connection?.Abort(error: null);
                return; // CloseAsync takes it from here
            }
            catch (FastRelayException ex) when (ex.ErrorCode == ErrorCode.Unauthorized)
            {
                GiveUp(ex); // the credentials are no longer accepted: retrying cannot help
                return;
            }
            catch (Exception ex)
            {
                connection?.Abort(error: null);
                lastError = ex as FastRelayException ?? new FastRelayConnectionException(ErrorCode.None, ex.Message, ex);
            }
        }
    }

    /// <summary>Switches to connected unless the client is closing or the new connection already dropped.</summary>
    private bool TryCompleteReconnect(ClientConnection connection)
    {
        lock (_stateLock)
        {
            if (_state != StateReconnecting || !connection.IsOpen || !ReferenceEquals(connection, _connection))
            {
                return false;
            }

            Interlocked.Increment(ref _reconnects);
            if (Volatile.Read(ref _drain) is { } drain && !ReferenceEquals(drain.Connection, connection))
            {
                Interlocked.CompareExchange(ref _drain, null, drain); // the drain is over: publishes flow again
            }

            _state = StateConnected;
            _lost = null;
            _connected.TrySetResult();
            return true;
        }
    }

    /// <summary>Stops reconnecting for good: the client ends with <paramref name="error"/>.</summary>
    private void GiveUp(FastRelayException error)
    {
        lock (_stateLock)
        {
            if (_state != StateReconnecting)
            {
                return;
            }

            _state = StateClosing;
        }

        _connection?.Abort(error: null);
        EndClient(new DisconnectInfo(ByClient: false, error.ErrorCode, error.Reason, error));
    }

    /// <summary>
    /// Resubscribes everything on a new connection: each topic with SUB {topic, epoch, seq} from the last event it
    /// delivered (RECOVERED replays the rest; NOT_RECOVERED becomes a notice), each pattern with a plain SUB. Returns
    /// false when the connection ended before every reply came.
    /// </summary>
    private async Task<bool> ResumeAsync(ClientConnection connection, CancellationToken ct)
    {
        var replies = new List<Task>();
        lock (_control)
        {
            var (topics, patterns) = _subscriptions.BeginResume(connection);
            foreach (var route in topics)
            {
                replies.Add(SendResume(connection, route));
            }

            foreach (var pattern in patterns)
            {
                var request = new PatternSubscribeRequest(connection.Pending.NextId(), this, connection, pattern, subscription: null);
                var frame = EncodeControl(PatternSub(request.RequestId, pattern)); // a pattern group rejoins plainly
                replies.Add(connection.Enqueue(request, frame, holdsSlot: false, CancellationToken.None));
            }
        }

        foreach (var reply in replies)
        {
            try
            {
                await reply.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is FastRelayConnectionException or TimeoutException)
            {
                return false;
            }
            catch (FastRelayException)
            {
                // Refused (e.g. 403 after a permission change): that subscription ended with the error; the rest go on.
            }
        }

        return connection.IsOpen;
    }

    /// <summary>Sends SUB {topic, epoch, seq} for a route from its last position (the route drops events until the reply).</summary>
    private Task<bool> SendResume(ClientConnection connection, TopicRoute route)
    {
        var request = new ResumeRequest(connection.Pending.NextId(), this, connection, route);
        var sub = new Envelope(FrameType.Sub).WithRequestId(request.RequestId).WithTopic(route.Topic);
        sub = route.Group is not null
            ? WithGroup(sub, route.Group, route.Credits) // a group member rejoins plainly: there is no position to resume from
            : sub.WithEpoch(route.Epoch).WithSeq(route.LastSeq);
        if (route.PresenceInfo is { } info)
        {
            sub = sub.WithPayload(info);
        }

        return connection.Enqueue(request, EncodeControl(sub), holdsSlot: false, CancellationToken.None);
    }

    /// <summary>The reply to a resuming SUB (receive loop): RECOVERED lets the replay through; NOT_RECOVERED moves on with a notice.</summary>
    internal void OnResumed(TopicRoute route, in Envelope reply)
    {
        if (!_subscriptions.IsAttached(route))
        {
            return; // unsubscribed while the reply was on its way
        }

        if (route.Group is not null)
        {
            route.Resuming = false; // rejoined the group: its events come after this ACK
            return;
        }

        var current = new StreamPosition(reply.Epoch, reply.Seq);
        if (reply.Type == FrameType.Recovered && current.Epoch == route.Epoch)
        {
            route.Resuming = false; // the missed events follow this reply
            return;
        }

        if (reply.Type == FrameType.Ack && current == route.Position)
        {
            route.Resuming = false;
            return;
        }

        var notice = route.NotRecovered(current);
        foreach (var subscription in route.All)
        {
            subscription.Notify(notice);
        }
    }

    /// <summary>The server refused to resume a topic (e.g. 403): its subscriptions end with the error.</summary>
    internal void OnResumeRefused(TopicRoute route, FastRelayException error)
    {
        Subscription[] ended;
        lock (_control)
        {
            ended = _subscriptions.DetachRoute(route);
        }

        foreach (var subscription in ended)
        {
            subscription.TryEnd(error);
        }
    }

    /// <summary>
    /// Asks the server for the events a live stream skipped: SUB {topic, epoch, last seq} on the live subscription, which
    /// the server replays into (the subscription and its presence stay). The route drops events until the reply;
    /// RECOVERED replays the gap, and the events the route dropped meanwhile come again in the replay.
    /// False when the route is no longer this connection's (the caller then reports the gap).
    /// </summary>
    private bool TryStartRepair(ClientConnection connection, TopicRoute route)
    {
        lock (_control)
        {
            if (!ReferenceEquals(route.Connection, connection) || !connection.IsOpen || !_subscriptions.IsAttached(route))
            {
                return false;
            }

            route.Resuming = true;
            Observe(SendResume(connection, route));
            return true;
        }
    }

    /// <summary>
    /// DRAIN (receive loop). With Reconnect on, no new publish goes to this connection from now on (they wait for the
    /// reconnect, or fail fast without retries); the server closes the connection once it has flushed everything it
    /// accepted, and the reconnect then waits for the DRAIN's delay, not the backoff.
    /// </summary>
    private void OnDrain(ClientConnection connection, DrainNotice notice)
    {
        if (_options.Reconnect.Enabled)
        {
            Volatile.Write(ref _drain, new DrainState(notice, connection));
        }

        Raise(Drained, this, notice);
    }

    /// <summary>The DRAIN's node hint as an endpoint, when it is a URL this client can connect to; else null (same URL).</summary>
    private static Uri? DrainTarget(DrainNotice notice)
    {
        if (string.IsNullOrEmpty(notice.Node) || !Uri.TryCreate(notice.Node, UriKind.Absolute, out var uri))
        {
            return null;
        }

        try
        {
            RelayEndpoint.Validate(uri);
            return uri;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
