using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// One transport session of a client: the socket, its send queue, the requests waiting for a reply on it and the two
/// loops (one writer, one receiver). It ends once (closed by the client, closed by the server, or lost) and tells its
/// owner; a reconnecting client then opens a new one. Requests never outlive the connection they were sent on.
/// </summary>
internal sealed class ClientConnection
{
    private const int Open = 0;
    private const int Closing = 1;
    private const int Over = 2;

    /// <summary>How long CloseAsync waits for queued frames to go out and the server to close its side.</summary>
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(2);

    private readonly IClientTransport _transport;
    private readonly Uri _endpoint;
    private readonly Action<ClientConnection, DisconnectInfo> _onEnded;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly TaskCompletionSource<DisconnectInfo> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Timer? _timeoutSweep;
    private readonly Lock _serverErrorLock = new();
    private (ErrorCode Code, string? Reason) _lastServerError;
    private Task _receiveLoop = Task.CompletedTask;
    private Task _writerLoop = Task.CompletedTask;
    private int _state;
    private int _loopsRunning = 2;

    public ClientConnection(Uri endpoint, IClientTransport transport, FastRelayClientOptions options, Action<ClientConnection, DisconnectInfo> onEnded)
    {
        _endpoint = endpoint;
        _transport = transport;
        _onEnded = onEnded;
        Pending = new PendingRequests(options.RequestTimeout);
        Outbox = new Outbox(options.SendQueueCapacity);
        if (options.RequestTimeout != Timeout.InfiniteTimeSpan)
        {
            var period = TimeSpan.FromTicks(Math.Clamp(options.RequestTimeout.Ticks / 8, TimeSpan.TicksPerMillisecond * 5, TimeSpan.TicksPerMillisecond * 250));
            _timeoutSweep = new Timer(static state => ((PendingRequests)state!).ExpireDue(), Pending, period, period);
        }
    }

    public PendingRequests Pending { get; }

    public Outbox Outbox { get; }

    /// <summary>Cancelled when the connection ends.</summary>
    public CancellationToken Lifetime => _lifetime.Token;

    /// <summary>True until the connection starts closing or is lost.</summary>
    public bool IsOpen => Volatile.Read(ref _state) == Open;

    /// <summary>Completes (never faults) when the connection has ended, with the reason.</summary>
    public Task<DisconnectInfo> Ended => _ended.Task;

    /// <summary>Completes when both loops have stopped and the transport is disposed.</summary>
    public Task Released => _released.Task;

    /// <summary>The code and reason of the last ERROR the server sent without a request id (the likely cause of a close).</summary>
    public (ErrorCode Code, string? Reason) LastServerError
    {
        get
        {
            lock (_serverErrorLock)
            {
                return _lastServerError;
            }
        }
    }

    /// <summary>Starts the writer and receive loops; <paramref name="receiver"/> gets every envelope read.</summary>
    public void Start(IEnvelopeReceiver receiver)
    {
        _writerLoop = Task.Run(RunWriterLoopAsync);
        _receiveLoop = Task.Run(() => RunReceiveLoopAsync(receiver));
    }

    public void NoteServerError(ErrorCode code, string reason)
    {
        lock (_serverErrorLock)
        {
            _lastServerError = (code, reason);
        }
    }

    /// <summary>
    /// Registers the request, then queues its frame (in that order, so the reply cannot arrive first) and returns the wait.
    /// Failures after validation come back as a faulted task.
    /// </summary>
    public Task<T> Enqueue<T>(PendingRequest<T> request, Frame frame, bool holdsSlot, CancellationToken ct, bool withDeadline = true)
    {
        try
        {
            Pending.Add(request, withDeadline);
        }
        catch (FastRelayException ex)
        {
            frame.Release();
            if (holdsSlot)
            {
                Outbox.ReleaseSlot();
            }

            return Task.FromException<T>(ex);
        }

        if (!Outbox.TryEnqueue(frame, holdsSlot))
        {
            frame.Release();
            if (holdsSlot)
            {
                Outbox.ReleaseSlot();
            }

            Pending.Remove(request.RequestId);
            request.Fail(NotConnected());
            return request.Task;
        }

        request.CancelWith(Pending, ct);
        return request.Task;
    }

    /// <summary>Queues a frame that needs no reply (PONG); false, and the frame released, when the connection is closing.</summary>
    public bool TrySend(Frame frame)
    {
        if (Outbox.TryEnqueue(frame, holdsSlot: false))
        {
            return true;
        }

        frame.Release();
        return false;
    }

    /// <summary>
    /// Closes gracefully: stops taking requests, sends what is queued, closes the transport and waits briefly for replies
    /// still in flight. Requests left unanswered then fail.
    /// </summary>
    public async Task CloseAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Closing, Open) == Open)
        {
            Pending.Refuse(static () => new FastRelayConnectionException(ErrorCode.None, "the client is closing"));
            Outbox.Complete();
            using var grace = new CancellationTokenSource(CloseGrace);
            try
            {
                await _writerLoop.WaitAsync(grace.Token).ConfigureAwait(false);
                await _transport.CloseAsync(grace.Token).ConfigureAwait(false);
                await _receiveLoop.WaitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Best effort: the server did not finish its side in time, or the connection broke meanwhile
                // (socket, WebSocket-state or cancellation errors alike). Either way the abort below ends it.
            }

            End(error: null);
        }

        await _released.Task.ConfigureAwait(false);
    }

    /// <summary>Ends the connection now; <paramref name="error"/> null means the client ended it.</summary>
    public void Abort(FastRelayException? error)
    {
        Interlocked.CompareExchange(ref _state, Closing, Open);
        End(error);
    }

    /// <summary>Drops the socket without any goodbye, as a network failure would (tests).</summary>
    internal void AbortTransportForTest() => _transport.Abort();

    public FastRelayConnectionException NotConnected()
    {
        var ended = _ended.Task.IsCompleted ? _ended.Task.Result : null;
        return new FastRelayConnectionException(ended?.ErrorCode ?? ErrorCode.None,
            ended is null ? "the client is closing" : $"not connected: {ended.Reason}");
    }

    /// <summary>Ends the connection once: fails requests in flight, stops both loops, then tells the owner.</summary>
    /// <param name="error">Why it was lost; null when the client closed it.</param>
    private void End(FastRelayException? error)
    {
        if (Interlocked.Exchange(ref _state, Over) == Over)
        {
            return;
        }

        var info = error is null
            ? new DisconnectInfo(ByClient: true, ErrorCode.None, "closed by the client", null)
            : new DisconnectInfo(ByClient: false, error.ErrorCode, error.Reason, error);
        Pending.Refuse(() => new FastRelayConnectionException(info.ErrorCode, $"not connected: {info.Reason}"));
        Outbox.Complete();
        _timeoutSweep?.Dispose();
        _lifetime.Cancel();
        _transport.Abort();
        _ended.TrySetResult(info);

        // The owner switches state (reconnecting, or closed) before requests fail, so a caller that retries on the
        // failure already finds the client reconnecting instead of a connection that merely looks alive.
        _onEnded(this, info);
        Pending.FailAll(error ?? new FastRelayConnectionException(ErrorCode.None, "the connection was closed by the client before the reply arrived"));
    }

    private async Task RunWriterLoopAsync()
    {
        try
        {
            await Outbox.RunWriterAsync(_transport, _lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            if (!_lifetime.IsCancellationRequested)
            {
                End(Volatile.Read(ref _state) == Closing ? null : Lost(ex));
            }
        }
        finally
        {
            OnLoopEnded();
        }
    }

    private async Task RunReceiveLoopAsync(IEnvelopeReceiver receiver)
    {
        FastRelayException? error;
        try
        {
            string? peerReason = await _transport.ReceiveAsync(receiver, _lifetime.Token).ConfigureAwait(false);
            error = ClosedByServer(peerReason);
        }
        catch (Exception ex)
        {
            error = Lost(ex);
        }

        try
        {
            End(Volatile.Read(ref _state) == Closing ? null : error);
        }
        finally
        {
            OnLoopEnded();
        }
    }

    /// <summary>The last of the two loops releases the transport's buffers and socket.</summary>
    private void OnLoopEnded()
    {
        if (Interlocked.Decrement(ref _loopsRunning) == 0)
        {
            _ = ReleaseAsync();
        }

        async Task ReleaseAsync()
        {
            try
            {
                await _transport.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                _released.TrySetResult();
            }
        }
    }

    private FastRelayConnectionException ClosedByServer(string? peerReason)
    {
        var (code, serverReason) = LastServerError;
        string reason = serverReason is not null ? $"the server closed the connection (last server error: {serverReason})"
            : peerReason is not null ? $"the server closed the connection: {peerReason}"
            : "the server closed the connection";
        return new FastRelayConnectionException(code, reason);
    }

    private FastRelayConnectionException Lost(Exception ex)
    {
        if (ex is FastRelayConnectionException known)
        {
            return known;
        }

        var (code, serverReason) = LastServerError;
        string reason = serverReason is not null
            ? $"the connection to {_endpoint} was lost: {ex.Message} (last server error: {serverReason})"
            : $"the connection to {_endpoint} was lost: {ex.Message}";
        return new FastRelayConnectionException(code, reason, ex);
    }
}
