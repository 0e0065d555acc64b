using System.Diagnostics;
using FastRelay.Client;

namespace FastRelay.Sidecar.Running;

/// <summary>
/// Renews a running job's lease every third of it (compare-and-set on the version it holds) and cancels the job's work
/// when the lease is lost: another worker took the job over, or no renewal got through for a whole lease.
/// </summary>
internal sealed class LeaseKeeper
{
    private readonly JobLedger _ledger;
    private readonly string _key;
    private readonly int _attempt;
    private readonly CancellationTokenSource _work;
    private readonly PeriodicTimer _timer;
    private readonly Task _loop;
    private ulong _version;
    private int _emitted;
    private volatile bool _lost;

    public LeaseKeeper(JobLedger ledger, string key, Claim claim, CancellationTokenSource work)
    {
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
        _timer.Dispose();
        await _loop.ConfigureAwait(false);
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
            await _ledger.TryWriteAsync(_key, released, JobLedger.RetainAfterLease, version, bounded.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException || JobLedger.IsUnreachable(ex) || ex is FastRelayException)
        {
            // The lease then runs out on its own.
        }
    }

    private async Task RenewAsync()
    {
        var sinceRenewed = Stopwatch.StartNew();
        try
        {
            while (await _timer.WaitForNextTickAsync().ConfigureAwait(false))
            {
                var state = new JobState(JobPhase.Running, _ledger.Owner, _attempt, Emitted);
                TimeSpan left = _ledger.Lease - sinceRenewed.Elapsed;
                if (left <= TimeSpan.Zero)
                {
                    Lose();
                    return;
                }

                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_work.Token);
                deadline.CancelAfter(left);
                try
                {
                    _version = await _ledger.TryWriteAsync(_key, state, _ledger.RunningTtl, _version, deadline.Token).ConfigureAwait(false)
                        ?? throw new LeaseLostException();
                    sinceRenewed.Restart();
                }
                catch (LeaseLostException)
                {
                    Lose();
                    return;
                }
                catch (OperationCanceledException) when (_work.IsCancellationRequested)
                {
                    return; // the work was cancelled (shutdown): nothing to renew for
                }
                catch (OperationCanceledException)
                {
                    Lose(); // the relay stayed out of reach for the rest of the lease: the job may be someone else's now
                    return;
                }
            }
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Lose()
    {
        _lost = true;
        _work.Cancel();
    }

    private sealed class LeaseLostException : Exception;
}
