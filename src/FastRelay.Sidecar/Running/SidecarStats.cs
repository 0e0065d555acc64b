namespace FastRelay.Sidecar.Running;

/// <summary>What the sidecar's workers did since start (thread-safe counters).</summary>
public sealed class SidecarStats
{
    private readonly List<(Func<SidecarStats, bool> Condition, TaskCompletionSource Done)> _waiters = [];
    private long _acknowledged, _started, _completed, _degraded, _restarted, _alreadyDone, _resentFinals, _lostLeases, _abandoned, _invalid, _duplicates;

    /// <summary>Jobs whose deliveries were acknowledged to the group: finished here, for good.</summary>
    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    /// <summary>Jobs a worker claimed and called the model for.</summary>
    public long Started => Interlocked.Read(ref _started);

    /// <summary>Final events published (degraded ones included).</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Final events published with the degraded flag.</summary>
    public long Degraded => Interlocked.Read(ref _degraded);

    /// <summary>Jobs taken over from a worker whose lease had expired (attempt 2 or later).</summary>
    public long Restarted => Interlocked.Read(ref _restarted);

    /// <summary>Redelivered jobs found done in the KV store: acknowledged, not run again.</summary>
    public long AlreadyDone => Interlocked.Read(ref _alreadyDone);

    /// <summary>Redelivered jobs whose final was decided but maybe not published: the same final published again.</summary>
    public long ResentFinals => Interlocked.Read(ref _resentFinals);

    /// <summary>Jobs given up because another worker took them over (this worker's lease lapsed).</summary>
    public long LostLeases => Interlocked.Read(ref _lostLeases);

    /// <summary>Jobs left unfinished at shutdown, for another sidecar to pick up.</summary>
    public long Abandoned => Interlocked.Read(ref _abandoned);

    /// <summary>Job events that were not a valid job (answered with a degraded final when they named a reply topic).</summary>
    public long Invalid => Interlocked.Read(ref _invalid);

    /// <summary>Deliveries of a job this sidecar was already running (acknowledged when it finishes).</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Completes once <paramref name="condition"/> holds (checked now and after every change).</summary>
    public Task WaitUntilAsync(Func<SidecarStats, bool> condition, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            if (condition(this))
            {
                return Task.CompletedTask;
            }

            _waiters.Add((condition, done));
        }

        return done.Task.WaitAsync(ct);
    }

    internal void OnAcknowledged() => Bump(ref _acknowledged);

    internal void OnStarted() => Bump(ref _started);

    internal void OnCompleted(bool degraded)
    {
        if (degraded)
        {
            Interlocked.Increment(ref _degraded);
        }

        Bump(ref _completed);
    }

    internal void OnRestarted() => Bump(ref _restarted);

    internal void OnAlreadyDone() => Bump(ref _alreadyDone);

    internal void OnResentFinal() => Bump(ref _resentFinals);

    internal void OnLostLease() => Bump(ref _lostLeases);

    internal void OnAbandoned() => Bump(ref _abandoned);

    internal void OnInvalid() => Bump(ref _invalid);

    internal void OnDuplicate() => Bump(ref _duplicates);

    private void Bump(ref long counter)
    {
        Interlocked.Increment(ref counter);
        lock (_waiters)
        {
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Condition(this))
                {
                    _waiters[i].Done.TrySetResult();
                    _waiters.RemoveAt(i);
                }
            }
        }
    }

    public override string ToString() =>
        $"acknowledged {Acknowledged}, started {Started}, completed {Completed} ({Degraded} degraded), restarted {Restarted}, already done {AlreadyDone}, " +
        $"finals re-sent {ResentFinals}, lost leases {LostLeases}, abandoned {Abandoned}, invalid {Invalid}, duplicate deliveries {Duplicates}";
}
