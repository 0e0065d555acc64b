namespace FastRelay.Client;

/// <summary>
/// Requests in flight, by request id, plus their deadlines. Every request gets the same timeout, so deadlines grow in
/// the order requests are added: a FIFO queue replaces a timer per request, and the periodic sweep only looks at its front.
/// </summary>
internal sealed class PendingRequests
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, IPendingRequest> _byId = [];
    private readonly Queue<(ulong RequestId, long Deadline)> _deadlines = new();
    private readonly long _timeoutMs;
    private ulong _lastId;
    private Func<Exception>? _refusal;

    /// <param name="timeout">Per-request timeout; <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    public PendingRequests(TimeSpan timeout)
    {
        Timeout = timeout;
        _timeoutMs = timeout == System.Threading.Timeout.InfiniteTimeSpan ? -1 : (long)Math.Ceiling(timeout.TotalMilliseconds);
    }

    public TimeSpan Timeout { get; }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byId.Count;
            }
        }
    }

    /// <summary>The next request id of this connection (1, 2, 3, ...).</summary>
    public ulong NextId() => Interlocked.Increment(ref _lastId);

    /// <summary>Registers a request before its frame is queued, so its reply cannot overtake it.</summary>
    /// <exception cref="FastRelayConnectionException">The connection no longer takes requests.</exception>
    public void Add(IPendingRequest request, bool withDeadline = true)
    {
        lock (_lock)
        {
            if (_refusal is not null)
            {
                throw _refusal();
            }

            _byId.Add(request.RequestId, request);
            if (withDeadline && _timeoutMs >= 0)
            {
                _deadlines.Enqueue((request.RequestId, Environment.TickCount64 + _timeoutMs));
            }
        }
    }

    /// <summary>Removes and returns the request a reply belongs to; null for an unknown id (a reply after a timeout or cancel).</summary>
    public IPendingRequest? Take(ulong requestId)
    {
        lock (_lock)
        {
            if (!_byId.Remove(requestId, out var request))
            {
                return null;
            }

            // Replies mostly come in request order: drop answered deadlines from the front now, so the queue stays
            // as short as the number of requests in flight instead of growing until the next sweep.
            while (_deadlines.TryPeek(out var front) && !_byId.ContainsKey(front.RequestId))
            {
                _deadlines.Dequeue();
            }

            return request;
        }
    }

    public void Remove(ulong requestId)
    {
        lock (_lock)
        {
            _byId.Remove(requestId);
        }
    }

    /// <summary>From now on <see cref="Add"/> throws what <paramref name="refusal"/> makes; requests in flight keep waiting.</summary>
    public void Refuse(Func<Exception> refusal)
    {
        lock (_lock)
        {
            _refusal ??= refusal;
        }
    }

    /// <summary>Refuses new requests and fails every request in flight with <paramref name="error"/>.</summary>
    public void FailAll(Exception error)
    {
        IPendingRequest[] failed;
        lock (_lock)
        {
            _refusal ??= () => error;
            failed = [.. _byId.Values];
            _byId.Clear();
            _deadlines.Clear();
        }

        foreach (var request in failed)
        {
            request.Fail(error);
        }
    }

    /// <summary>Fails the requests whose deadline has passed with a <see cref="TimeoutException"/>.</summary>
    public void ExpireDue()
    {
        List<IPendingRequest>? expired = null;
        long now = Environment.TickCount64;
        lock (_lock)
        {
            while (_deadlines.TryPeek(out var front))
            {
                if (_byId.TryGetValue(front.RequestId, out var request))
                {
                    if (front.Deadline > now)
                    {
                        break;
                    }

                    _byId.Remove(front.RequestId);
                    (expired ??= []).Add(request);
                }

                _deadlines.Dequeue();
            }
        }

        if (expired is null)
        {
            return;
        }

        foreach (var request in expired)
        {
            request.Fail(new TimeoutException($"{request.Describe()} (request {request.RequestId}) got no reply within {Timeout.TotalMilliseconds:0} ms (RequestTimeout)."));
        }
    }
}
