using FastRelay.Client;
using FastRelay.Sidecar.Configuration;

namespace FastRelay.Sidecar.Running;

/// <summary>What <see cref="JobLedger.ClaimAsync"/> found.</summary>
internal enum ClaimOutcome
{
    /// <summary>This worker owns the job now (<see cref="Claim.Version"/>, <see cref="Claim.Attempt"/>).</summary>
    Claimed,

    /// <summary>The job's final was decided by an earlier worker (<see cref="Claim.Final"/>): publish it, do not run it.</summary>
    Final,

    /// <summary>The job is finished: acknowledge the delivery and do nothing else.</summary>
    Done,
}

internal sealed record Claim(ClaimOutcome Outcome, ulong Version, int Attempt, int Emitted, byte[]? Final = null, string? PreviousOwner = null);

/// <summary>
/// Job ownership through the relay's KV store: compare-and-set on the key's version is the only way to change a job's
/// state, so of two workers holding the same job at most one can move it on, and only one final is ever decided.
/// </summary>
/// <remarks>
/// <para>The lease is the key's TTL, read back on the relay's clock (no clock comparison between machines): a running
/// job's record is written with TTL = lease + <see cref="RetainAfterLease"/>, and the lease is live while the remaining
/// TTL exceeds <see cref="RetainAfterLease"/>. After that the record stays readable for a while, so the next worker
/// learns the attempt count and that partials were already streamed (it announces a restart).</para>
/// <para>A write whose reply was lost (timeout, connection drop) is ambiguous: the ledger reads the key back and takes
/// the write as done when the record is the one it wrote.</para>
/// </remarks>
internal sealed class JobLedger(FastRelayClient client, JobSettings settings, string owner)
{
    /// <summary>How long a running job's record outlives its lease.</summary>
    public static readonly TimeSpan RetainAfterLease = TimeSpan.FromMinutes(5);

    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(250);

    public string Owner { get; } = owner;

    public JobSettings Settings => settings;

    public TimeSpan Lease => settings.Lease;

    public TimeSpan RunningTtl => settings.Lease + RetainAfterLease;

    /// <summary>Takes the job, waiting while another live worker holds its lease.</summary>
    /// <param name="whileWaiting">Runs before each wait for another worker's lease (the waiting worker keeps the relay's
    /// lease on its own delivery alive, so the group does not count the wait as a failed delivery).</param>
    public async Task<Claim> ClaimAsync(string key, CancellationToken ct, Func<Task>? whileWaiting = null)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            KvEntry? entry = await RelayAsync(() => client.KvGetAsync(key, ct), ct).ConfigureAwait(false);
            if (entry is null)
            {
                var fresh = new JobState(JobPhase.Running, Owner, Attempt: 1, Emitted: 0);
                if (await TryWriteAsync(key, fresh, RunningTtl, expectedVersion: 0, ct).ConfigureAwait(false) is { } created)
                {
                    return new Claim(ClaimOutcome.Claimed, created, 1, 0);
                }

                continue;
            }

            if (!JobState.TryDecode(entry.Value, out JobState? state))
            {
                // Not a record this protocol wrote: take the key over rather than leave the job stuck.
                var replaced = new JobState(JobPhase.Running, Owner, Attempt: 1, Emitted: 0);
                if (await TryWriteAsync(key, replaced, RunningTtl, entry.Version, ct).ConfigureAwait(false) is { } v)
                {
                    return new Claim(ClaimOutcome.Claimed, v, 1, 0);
                }

                continue;
            }

            switch (state.Phase)
            {
                case JobPhase.Done:
                    return new Claim(ClaimOutcome.Done, entry.Version, state.Attempt, state.Emitted);
                case JobPhase.Final:
                    return new Claim(ClaimOutcome.Final, entry.Version, state.Attempt, state.Emitted, state.Final);
            }

            TimeSpan leaseLeft = (entry.Ttl ?? TimeSpan.Zero) - RetainAfterLease;
            if (state.Owner != Owner && leaseLeft > TimeSpan.Zero)
            {
                // Another worker holds it and renews it while alive: look again when its lease would have run out.
                TimeSpan wait = leaseLeft < settings.Lease ? leaseLeft : settings.Lease;
                if (whileWaiting is not null)
                {
                    await whileWaiting().ConfigureAwait(false);
                }

                await Task.Delay(wait + TimeSpan.FromMilliseconds(20), ct).ConfigureAwait(false);
                continue;
            }

            var takeover = new JobState(JobPhase.Running, Owner, state.Attempt + 1, state.Emitted);
            if (await TryWriteAsync(key, takeover, RunningTtl, entry.Version, ct).ConfigureAwait(false) is { } taken)
            {
                return new Claim(ClaimOutcome.Claimed, taken, takeover.Attempt, state.Emitted, PreviousOwner: state.Owner);
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="state"/> if the key is still at <paramref name="expectedVersion"/> (0: absent); the new
    /// version, or null when another writer got there first. Retries while the relay is unreachable.
    /// </summary>
    /// <param name="heldAttempt">
    /// The attempt this worker runs, when it writes as the job's owner: a version that moved on because one of its own
    /// earlier writes went through without its reply arriving (a renewal cut off by a reconnect or by stopping) is
    /// then recognised as still its own, and the write is retried on the current version.
    /// </param>
    public async Task<ulong?> TryWriteAsync(string key, JobState state, TimeSpan ttl, ulong expectedVersion, CancellationToken ct, int? heldAttempt = null)
    {
        byte[] value = state.Encode();
        while (true)
        {
            var options = new KvSetOptions { Ttl = ttl, ExpectedVersion = expectedVersion };
            try
            {
                return await client.KvSetAsync(key, value, options, CancellationToken.None).ConfigureAwait(false);
            }
            catch (FastRelayKvConflictException)
            {
                // Another writer, or an earlier write of ours whose reply was lost: look.
            }
            catch (Exception ex) when (IsUnreachable(ex))
            {
                await WaitForRelayAsync(ct).ConfigureAwait(false);
            }

            KvEntry? now = await RelayAsync(() => client.KvGetAsync(key, ct), ct).ConfigureAwait(false);
            ulong current = now?.Version ?? 0;
            if (now is not null && now.Value.Span.SequenceEqual(value))
            {
                return current; // this very write went through
            }

            if (current == expectedVersion)
            {
                continue; // nothing changed: the write did not happen; try again
            }

            if (heldAttempt is { } attempt && now is not null && JobState.TryDecode(now.Value, out JobState? stored)
                && stored.Phase == JobPhase.Running && stored.Owner == Owner && stored.Attempt == attempt)
            {
                expectedVersion = current; // moved on by our own earlier write: still ours
                continue;
            }

            return null;
        }
    }

    /// <summary>Runs a relay call, waiting out disconnections (the client reconnects) until <paramref name="ct"/> ends.</summary>
    public async Task<T> RelayAsync<T>(Func<Task<T>> call, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                return await call().ConfigureAwait(false);
            }
            catch (Exception ex) when (IsUnreachable(ex) && !ct.IsCancellationRequested)
            {
                await WaitForRelayAsync(ct).ConfigureAwait(false);
            }
            catch (FastRelayBackoffException ex) when (!ct.IsCancellationRequested)
            {
                // The relay pushed back (after the client's own retries): its queues are full for now, not forever.
                await Task.Delay(ex.RetryAfter > RetryDelay ? ex.RetryAfter : RetryDelay, ct).ConfigureAwait(false);
            }
        }
    }

    public async Task WaitForRelayAsync(CancellationToken ct)
    {
        await Task.Delay(RetryDelay, ct).ConfigureAwait(false);
        await client.WaitUntilConnectedAsync(ct).ConfigureAwait(false);
    }

    public static bool IsUnreachable(Exception ex) => ex is FastRelayConnectionException or TimeoutException;
}
