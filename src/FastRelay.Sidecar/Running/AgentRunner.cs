using System.Threading.Channels;
using FastRelay.Client;
using FastRelay.Sidecar.Agents;

namespace FastRelay.Sidecar.Running;

/// <summary>
/// One agent at work: a member of its consumer group with credits = concurrency, so the relay never hands it more jobs
/// than it has workers, and that many workers taking deliveries from a bounded queue.
/// </summary>
internal sealed class AgentRunner
{
    private readonly Agent _agent;
    private readonly FastRelayClient _client;
    private readonly JobProcessor _processor;
    private readonly SidecarLog _log;
    private readonly Channel<Delivery> _queue;
    private readonly CancellationTokenSource _abort = new();
    private Subscription? _subscription;
    private Task[] _workers = [];

    public AgentRunner(Agent agent, FastRelayClient client, JobLedger ledger, SidecarStats stats, SidecarLog log)
    {
        _agent = agent;
        _client = client;
        _log = log;
        _processor = new JobProcessor(agent, client, ledger, stats, log);

        // Credits bound what the relay sends to `concurrency`; deliveries of a connection that was replaced (the relay
        // hands those to other members) can briefly add as many again.
        _queue = Channel.CreateBounded<Delivery>(new BoundedChannelOptions(agent.Spec.Concurrency * 2)
        {
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public string Name => _agent.Name;

    public async Task StartAsync(CancellationToken ct)
    {
        _workers = [.. Enumerable.Range(0, _agent.Spec.Concurrency).Select(_ => Task.Run(WorkAsync, CancellationToken.None))];
        var options = new SubscribeOptions { Group = _agent.Spec.Group, Credits = _agent.Spec.Concurrency };
        var ready = new TaskCompletionSource<Subscription>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _subscription = await _client.SubscribeAsync(_agent.Spec.Consumes, options, async e =>
            {
                // The first event can beat SubscribeAsync's return to the handler pump.
                Subscription self = await ready.Task.ConfigureAwait(false);
                await _queue.Writer.WriteAsync(new Delivery(e, self), _abort.Token).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
            ready.SetResult(_subscription);
        }
        catch
        {
            ready.TrySetCanceled(CancellationToken.None);
            _queue.Writer.TryComplete();
            throw;
        }

        _log.Info($"agent {_agent.Name}: consuming {_agent.Spec.Consumes} as group {_agent.Spec.Group} with {_agent.Spec.Concurrency} workers");
    }

    /// <summary>
    /// Leaves the group (jobs not started yet go back to it at once), lets jobs in progress finish within
    /// <paramref name="drainTimeout"/>, then stops the rest; what they held is handed back for another sidecar.
    /// </summary>
    public async Task StopAsync(TimeSpan drainTimeout)
    {
        if (_subscription is { } subscription)
        {
            try
            {
                await subscription.UnsubscribeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is FastRelayException or TimeoutException)
            {
                // Not connected: the relay drops the membership with the connection.
            }
        }

        _queue.Writer.TryComplete();
        Task all = Task.WhenAll(_workers);
        if (await Task.WhenAny(all, Task.Delay(drainTimeout)).ConfigureAwait(false) != all)
        {
            _log.Warn($"agent {_agent.Name}: jobs still running after the drain timeout ({drainTimeout.TotalSeconds:0.#} s): stopping them");
            await _abort.CancelAsync().ConfigureAwait(false);
        }

        await all.ConfigureAwait(false);
    }

    private async Task WorkAsync()
    {
        await foreach (Delivery delivery in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (_abort.IsCancellationRequested)
            {
                continue; // shutting down: not started, so nothing to hand back but the delivery, which the relay reassigns
            }

            try
            {
                await _processor.ProcessAsync(delivery, _abort.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !_abort.IsCancellationRequested)
            {
                // A bug or an unexpected failure in one job must not take the worker down; the job is redelivered.
                _log.Error($"agent {_agent.Name}: job event {delivery.Event}: {ex.GetType().Name}: {ex.Message}");
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
