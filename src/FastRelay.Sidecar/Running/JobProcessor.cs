using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using FastRelay.Client;
using FastRelay.Client.Jobs;
using FastRelay.Protocol;
using FastRelay.Sidecar.Agents;
using FastRelay.Sidecar.Calls;

namespace FastRelay.Sidecar.Running;

/// <summary>One job event as a group member received it; acknowledged when the job is finished.</summary>
internal sealed record Delivery(RelayEvent Event, Subscription Subscription);

/// <summary>
/// Runs one agent's jobs: claim in the KV store, call the model, stream partials, decide the one final through the KV
/// store, publish it, acknowledge the delivery. Shared by the agent's workers.
/// </summary>
/// <remarks>
/// The order of the last steps is what makes a crash at any point safe. The final is first recorded (phase
/// <see cref="JobPhase.Final"/>, with its payload) by compare-and-set on the version this worker's lease holds, so of
/// two workers that both think they own the job only one can decide a final. It is then published with the message id
/// <c>{job}/{agent}/final</c> under the client id every sidecar shares, recorded as done, and the delivery acknowledged.
/// A worker that finds the job in phase Final publishes that same final again, which the relay's idempotent publish
/// turns into a duplicate ACK when the first one went out; a worker that finds it done only acknowledges.
/// </remarks>
internal sealed class JobProcessor
{
    private readonly Agent _agent;
    private readonly FastRelayClient _client;
    private readonly JobLedger _ledger;
    private readonly SidecarStats _stats;
    private readonly SidecarLog _log;
    private readonly ConcurrentDictionary<string, JobRun> _running = new(StringComparer.Ordinal);

    public JobProcessor(Agent agent, FastRelayClient client, JobLedger ledger, SidecarStats stats, SidecarLog log)
    {
        _agent = agent;
        _client = client;
        _ledger = ledger;
        _stats = stats;
        _log = log;
    }

    /// <summary>Processes one delivery; <paramref name="abort"/> ends the work without a final (shutdown).</summary>
    public async Task ProcessAsync(Delivery delivery, CancellationToken abort)
    {
        RelayEvent e = delivery.Event;
        string fallbackId = e.MessageId ?? $"{e.Topic}@{e.Epoch}:{e.Seq}";
        if (!JobWire.TryDecodeRequest(e.Payload, out JobRequest? request, out string? error, out string? replyTopic))
        {
            _stats.OnInvalid();
            _log.Warn($"agent {_agent.Name}: job {fallbackId} on {e.Topic} is invalid: {error}");
            if (replyTopic is not null && IsTopic(replyTopic))
            {
                var invalid = new JobResult(fallbackId, "") { Degraded = true, Reason = "invalid_job", Error = error, Agent = _agent.Name };
                await PublishFinalAsync(replyTopic, fallbackId, JobWire.EncodeResult(invalid), degraded: true, abort).ConfigureAwait(false);
            }

            await AckAsync(delivery).ConfigureAwait(false);
            _stats.OnAcknowledged();
            return;
        }

        string jobId = request.Id ?? fallbackId;
        var run = new JobRun(delivery);
        while (!_running.TryAdd(jobId, run))
        {
            if (_running.TryGetValue(jobId, out JobRun? current) && current.TryAttach(delivery))
            {
                _stats.OnDuplicate(); // redelivered to us while we run it: acknowledged with the first
                return;
            }

            await Task.Yield(); // the run we met is finishing: let it leave the table
        }

        try
        {
            await RunAsync(jobId, request, run, abort).ConfigureAwait(false);
        }
        finally
        {
            _running.TryRemove(new KeyValuePair<string, JobRun>(jobId, run));
        }
    }

    private async Task RunAsync(string jobId, JobRequest request, JobRun run, CancellationToken abort)
    {
        string key = JobKeys.For(_agent.Spec.Group, _agent.Name, jobId);
        string? reply = request.ReplyTopic is { } r && IsTopic(r) ? r : null;
        Claim claim;
        try
        {
            claim = await _ledger.ClaimAsync(key, abort, () => ExtendAllAsync(run)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            _stats.OnAbandoned();
            return;
        }

        switch (claim.Outcome)
        {
            case ClaimOutcome.Done:
                _stats.OnAlreadyDone();
                await AckAllAsync(run).ConfigureAwait(false);
                return;
            case ClaimOutcome.Final:
                _stats.OnResentFinal();
                _log.Info($"agent {_agent.Name}: job {jobId}: its final was decided by an earlier worker; publishing it again");
                await DeliverAsync(jobId, request, reply, key, claim.Version, claim.Final!, run, abort).ConfigureAwait(false);
                return;
        }

        _stats.OnStarted();
        var clock = Stopwatch.StartNew();
        using var work = CancellationTokenSource.CreateLinkedTokenSource(abort);
        var lease = new LeaseKeeper(_ledger, key, claim, work, () => ExtendAllAsync(run));
        bool streams = reply is not null && _agent.Spec.Emits.Reply && _agent.Spec.Emits.Partials;
        ModelCallResult? result = null;
        try
        {
            if (claim.Attempt > 1)
            {
                _stats.OnRestarted();
                _log.Info($"agent {_agent.Name}: job {jobId}: taking over from {claim.PreviousOwner} (attempt {claim.Attempt}), restarting its reply");
                if (streams)
                {
                    byte[] restart = JobWire.EncodeRestart(new JobRestarted(jobId, claim.Attempt, "the worker streaming this job was lost; the reply starts again"));
                    await _ledger.RelayAsync(() => _client.PublishAsync(reply!, restart,
                        new PublishOptions { MessageId = $"{jobId}/{_agent.Name}/restart/{claim.Attempt}", PrevEventId = jobId }, work.Token), work.Token).ConfigureAwait(false);
                }
            }

            await foreach (ModelCallUpdate update in _agent.Caller.CallAsync(request.Input, work.Token).ConfigureAwait(false))
            {
                if (update is ModelPartial partial)
                {
                    if (streams && partial.Delta.Length > 0)
                    {
                        await PublishPartialAsync(reply!, jobId, partial.Delta, work.Token).ConfigureAwait(false);
                        lease.OnEmitted();
                    }
                }
                else
                {
                    result = (ModelCallResult)update;
                }
            }
        }
        catch (OperationCanceledException) when (work.IsCancellationRequested)
        {
            if (lease.Lost)
            {
                await lease.StopAsync().ConfigureAwait(false);
                _stats.OnLostLease();
                _log.Warn($"agent {_agent.Name}: job {jobId}: lease lost (another worker took the job over); stopped without a final");
            }
            else
            {
                await lease.ReleaseAsync().ConfigureAwait(false);
                _stats.OnAbandoned();
                _log.Info($"agent {_agent.Name}: job {jobId}: stopped by shutdown; handed back for another worker");
            }

            return;
        }
        catch
        {
            // A failure that is not the model's (those end in a degraded result) nor a cancellation: hand the job
            // back at once, lease released, so a redelivery (after the relay's group lease) is taken over without
            // waiting for this worker's lease, which would otherwise be renewed for as long as the process lives.
            await lease.ReleaseAsync().ConfigureAwait(false);
            throw;
        }

        ulong version = await lease.StopAsync().ConfigureAwait(false);
        if (lease.Lost || result is null)
        {
            _stats.OnLostLease();
            return;
        }

        var final = new JobResult(jobId, result.Text)
        {
            Model = result.Model,
            Attempts = result.Attempts,
            Degraded = result.Degraded,
            Reason = result.Degraded ? result.Reason.ToString().ToLowerInvariant() : null,
            Error = result.Error,
            FinishReason = result.FinishReason,
            Agent = _agent.Name,
        };
        byte[] payload = JobWire.EncodeResult(final);
        ulong? decided;
        try
        {
            decided = await _ledger.TryWriteAsync(key, new JobState(JobPhase.Final, _ledger.Owner, claim.Attempt, lease.Emitted, payload),
                _ledger.Settings.KeepResult, version, abort, claim.Attempt).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            _stats.OnAbandoned();
            return;
        }

        if (decided is not { } finalVersion)
        {
            _stats.OnLostLease();
            _log.Warn($"agent {_agent.Name}: job {jobId}: another worker took the job over before its final was recorded; this result is dropped");
            return;
        }

        await DeliverAsync(jobId, request, reply, key, finalVersion, payload, run, abort).ConfigureAwait(false);
        _log.Info($"agent {_agent.Name}: job {jobId}: {(final.Degraded ? $"degraded final ({final.Reason}: {final.Error})" : "final")} " +
            $"from {final.Model}, {lease.Emitted} partials, {final.Attempts} model attempts, {clock.Elapsed.TotalSeconds:0.00} s");
    }

    /// <summary>Publishes a decided final (reply topic and/or the next agent's topic), records the job done, acknowledges.</summary>
    private async Task DeliverAsync(string jobId, JobRequest request, string? reply, string key, ulong version, byte[] payload, JobRun run,
        CancellationToken abort)
    {
        if (!JobWire.TryDecodeReply(new RelayEvent("", 0, 0, null, null, jobId, 0, EventFlags.Final, payload), out JobUpdate? decoded, out _)
            || decoded is not JobResult result)
        {
            throw new InvalidOperationException($"job {jobId}: the recorded final is not a final event");
        }

        try
        {
            // The job's lease keeper has stopped: one more progress report gives the relay's lease on these deliveries
            // a full term for the last steps (publish, record, acknowledge), however long the job itself ran.
            await ExtendAllAsync(run).ConfigureAwait(false);
            string? next = _agent.Spec.Emits.Topic;
            bool forward = next is not null && !result.Degraded;
            if (forward)
            {
                // The next agent of the chain gets the result as its job: same id, same requester.
                // The ordering key goes along, so a conversation's jobs keep their order through the whole chain.
                byte[] job = JobWire.EncodeRequest(new JobRequest(result.Text) { Id = jobId, ReplyTopic = request.ReplyTopic });
                await _ledger.RelayAsync(() => _client.PublishAsync(next!, job,
                    new PublishOptions { MessageId = $"{jobId}/{_agent.Name}/next", PrevEventId = jobId, Key = run.Key }, abort), abort).ConfigureAwait(false);
            }

            // The requester hears from this agent when it answers them, and always when the chain ends here in failure.
            if (reply is not null && (_agent.Spec.Emits.Reply || (result.Degraded && next is not null)))
            {
                try
                {
                    await PublishFinalAsync(reply, jobId, payload, result.Degraded, abort).ConfigureAwait(false);
                }
                catch (FastRelayException ex) when (ex is not FastRelayConnectionException)
                {
                    // Refused for good (403: the token may not publish there; 413: the reply is larger than the relay
                    // takes). Retrying cannot help: the job ends here, loudly, instead of being redelivered until it
                    // is dead-lettered.
                    _log.Error($"agent {_agent.Name}: job {jobId}: the relay refused its final on {reply}: {ex.Message}");
                }
            }

            _stats.OnCompleted(result.Degraded);
            await _ledger.TryWriteAsync(key, new JobState(JobPhase.Done, _ledger.Owner, 0, 0), _ledger.Settings.KeepResult, version, abort).ConfigureAwait(false);
            await AckAllAsync(run).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            // Left in phase Final: the next worker publishes the same final (deduplicated) and finishes it.
            _stats.OnAbandoned();
        }
    }

    private Task PublishFinalAsync(string reply, string jobId, byte[] payload, bool degraded, CancellationToken ct) =>
        _ledger.RelayAsync(() => _client.PublishAsync(reply, payload, new PublishOptions
        {
            MessageId = $"{jobId}/{_agent.Name}/final",
            PrevEventId = jobId,
            Flags = EventFlags.Final | (degraded ? EventFlags.Degraded : EventFlags.None),
        }, ct), ct);

    private async Task PublishPartialAsync(string reply, string jobId, string delta, CancellationToken ct)
    {
        try
        {
            // No ACK and no message id: partials are many and coalescible, and the final carries the whole text anyway.
            await _client.PublishNoAckAsync(reply, Encoding.UTF8.GetBytes(delta),
                new PublishOptions { PrevEventId = jobId, Flags = EventFlags.Partial }, ct).ConfigureAwait(false);
        }
        catch (FastRelayConnectionException)
        {
            // Reconnecting: this piece of the stream is lost; the final event still carries all of the text.
        }
    }

    private async Task AckAllAsync(JobRun run)
    {
        foreach (Delivery delivery in run.Close())
        {
            await AckAsync(delivery).ConfigureAwait(false);
        }

        _stats.OnAcknowledged();
    }

    /// <summary>
    /// Keeps the relay's lease on this job's deliveries alive while the job runs (GROUP_ACK in progress), so a job
    /// longer than <c>Relay:Groups:Lease</c> is neither handed to another sidecar nor counted toward dead-lettering.
    /// </summary>
    private static async Task ExtendAllAsync(JobRun run)
    {
        foreach (Delivery delivery in run.Snapshot())
        {
            try
            {
                await delivery.Subscription.ExtendLeaseAsync(delivery.Event).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is FastRelayException or TimeoutException)
            {
                // 404: the relay no longer counts this delivery as ours (reconnect, or already handed on); the KV
                // lease still decides who finishes the job.
            }
        }
    }

    private static async Task AckAsync(Delivery delivery)
    {
        try
        {
            await delivery.Subscription.AckAsync(delivery.Event).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is FastRelayException or TimeoutException)
        {
            // 404: the relay had already handed this delivery to another member (lease or reconnect); that member
            // finds the job done and acknowledges its own delivery. Not connected: the same happens after the reconnect.
        }
    }

    private static bool IsTopic(string topic) => Configuration.TopicRules.Validate(topic, isPattern: false, out _);

    /// <summary>The deliveries of one job this process is running (a redelivery may arrive while it runs).</summary>
    private sealed class JobRun(Delivery first)
    {
        private readonly List<Delivery> _deliveries = [first];
        private bool _closed;

        /// <summary>The job event's ordering key.</summary>
        public string? Key { get; } = first.Event.Key;

        public bool TryAttach(Delivery delivery)
        {
            lock (_deliveries)
            {
                if (_closed)
                {
                    return false;
                }

                _deliveries.Add(delivery);
                return true;
            }
        }

        public Delivery[] Snapshot()
        {
            lock (_deliveries)
            {
                return [.. _deliveries];
            }
        }

        public Delivery[] Close()
        {
            lock (_deliveries)
            {
                _closed = true;
                return [.. _deliveries];
            }
        }
    }
}
