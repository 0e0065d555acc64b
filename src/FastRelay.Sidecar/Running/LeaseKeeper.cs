using FastRelay.Client;

namespace FastRelay.Sidecar.Running;

/// <summary>
/// Renews a running job's lease every third of it (compare-and-set on the version it holds) and cancels the job's work
/// when the lease is lost, which only a refused compare-and-set proves: another worker took the job over.
/// </summary>
/// <remarks>
/// A renewal that is merely late (a busy machine, the relay out of reach for a while) does not give the job up: the
/// lease may have lapsed and another worker may have taken over, but then this worker's next renewal, and above all
/// its final, is refused, so at most the requester sees a few partials of the abandoned attempt after the restart
/// event. Giving up on a timer instead would abandon jobs that nobody else took.
/// </remarks>
internal sealed class LeaseKeeper
{
    private readonly JobLedger _ledger;
    private readonly string _key;
    private readonly int _attempt;
    private readonly CancellationTokenSource _work;
    private readonly PeriodicTimer _timer;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private ulong _version;
    private int _emitted;
    private volatile bool _lost;
    private int _stopped;

    private readonly Func<Task>? _onRenewed;

    /// <param name="onRenewed">Runs after every renewal (the worker extends the relay's lease on its deliveries).</param>
    public LeaseKeeper(JobLedger ledger, string key, Claim claim, CancellationTokenSource work, Func<Task>? onRenewed = null)
    {
        _onRenewed = onRenewed;
        _ledger = ledger;
        _key = key;
        _attempt = claim.Attempt;
        _version = claim.Version;
        _emitted = claim.Emitted;
        _work = work;
        _timer = new PeriodicTimer(ledger.Lease / 3);
        _loop = RenewAsync();
    }

    /// <summary>True once the job belongs to someone else (or may): its work was cancelled.</summary>
    public bool Lost => _lost;

    /// <summary>Partial events published so far (recorded at each renewal).</summary>
    public int Emitted => Volatile.Read(ref _emitted);

    public void OnEmitted() => Interlocked.Increment(ref _emitted);

    /// <summary>Stops renewing, lets a renewal in flight finish, and returns the version the job is held at.</summary>
    public async Task<ulong> StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            await _loop.ConfigureAwait(false);
            return _version;
        }

        _timer.Dispose();
        await _stopping.CancelAsync().ConfigureAwait(false); // ends a wait for the relay; a write already sent completes
        await _loop.ConfigureAwait(false);
        _stopping.Dispose();
        return _version;
    }

    /// <summary>Hands the job back at shutdown: its record stays, but with its lease over, so the next worker takes it at once.</summary>
    public async Task ReleaseAsync()
    {
        ulong version = await StopAsync().ConfigureAwait(false);
        if (_lost)
        {
            return;
        }

        using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            var released = new JobState(JobPhase.Running, _ledger.Owner, _attempt, Emitted);
            await _ledger.TryWriteAsync(_key, released, JobLedger.RetainAfterLease, version, bounded.Token, _attempt).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException || JobLedger.IsUnreachable(ex) || ex is FastRelayException)
        {
            // The lease then runs out on its own.
        }
    }

    private async Task RenewAsync()
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_work.Token, _stopping.Token);
        try
        {
            while (await _timer.WaitForNextTickAsync().ConfigureAwait(false))
            {
                var state = new JobState(JobPhase.Running, _ledger.Owner, _attempt, Emitted);
                if (await _ledger.TryWriteAsync(_key, state, _ledger.RunningTtl, _version, stop.Token, _attempt).ConfigureAwait(false) is { } renewed)
                {
                    _version = renewed;
                    if (_onRenewed is not null)
                    {
                        await _onRenewed().ConfigureAwait(false);
                    }
                }
                else
                {
                    Lose();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped, or the work was cancelled (shutdown): nothing more to renew.
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception ex) when (ex is FastRelayException or TimeoutException)
        {
            // Refused outright (e.g. 403 on the key): the lease cannot be kept, so the job is not this worker's.
            Lose();
        }
    }

    private void Lose()
    {
        _lost = true;
        _work.Cancel();
    }

}
