using FastRelay.Client;
using FastRelay.Sidecar.Agents;
using FastRelay.Sidecar.Configuration;

namespace FastRelay.Sidecar.Running;

/// <summary>
/// The running sidecar: one relay connection (reconnecting, with the configured client id) and an
/// <see cref="AgentRunner"/> per agent. The relay never waits on a model: everything slow happens here.
/// </summary>
public sealed class SidecarHost : IAsyncDisposable
{
    private readonly FastRelayClient _client;
    private readonly List<AgentRunner> _runners;
    private readonly SidecarConfig _config;
    private readonly SidecarLog _log;
    private int _stopped;

    private SidecarHost(SidecarConfig config, FastRelayClient client, List<AgentRunner> runners, SidecarStats stats, SidecarLog log, string owner)
    {
        _config = config;
        _client = client;
        _runners = runners;
        Stats = stats;
        _log = log;
        Owner = owner;
    }

    public SidecarStats Stats { get; }

    /// <summary>This process's identity as a job owner in the KV store (unique per run).</summary>
    public string Owner { get; }

    public FastRelayClient Client => _client;

    /// <summary>
    /// Connects to the relay (retrying until it answers or <paramref name="ct"/> ends) and starts every agent.
    /// </summary>
    /// <param name="relayUrl">Overrides the configuration's relay URL.</param>
    public static async Task<SidecarHost> StartAsync(SidecarConfig config, ModelChainFactory models, SidecarLog? log = null,
        Uri? relayUrl = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(models);
        log ??= new SidecarLog();
        Uri url = relayUrl ?? config.RelayUrl;
        string owner = $"{config.ClientId}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";
        var options = new FastRelayClientOptions
        {
            ClientId = config.ClientId,
            Token = config.RelayTokenEnv is { } env ? Environment.GetEnvironmentVariable(env) : null,
            Reconnect = new ReconnectOptions { Enabled = true, MaxDelay = TimeSpan.FromSeconds(5) },
        };

        FastRelayClient client = await ConnectAsync(url, options, log, ct).ConfigureAwait(false);
        var stats = new SidecarStats();
        var ledger = new JobLedger(client, config.Jobs, owner);
        var runners = Agent.CreateAll(config, models).Select(agent => new AgentRunner(agent, client, ledger, stats, log)).ToList();
        var host = new SidecarHost(config, client, runners, stats, log, owner);
        client.ConnectionLost += (_, info) => log.Warn($"relay connection lost ({info.Reason}); reconnecting");
        client.Reconnected += (_, info) => log.Info($"relay connection back after {info.Outage.TotalSeconds:0.0} s");
        try
        {
            foreach (AgentRunner runner in runners)
            {
                await runner.StartAsync(ct).ConfigureAwait(false);
            }
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        log.Info($"sidecar {owner}: connected to {url}, {runners.Count} agent(s) running");
        return host;
    }

    private static async Task<FastRelayClient> ConnectAsync(Uri url, FastRelayClientOptions options, SidecarLog log, CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            try
            {
                return await FastRelayClient.ConnectAsync(url, options, ct).ConfigureAwait(false);
            }
            catch (FastRelayConnectionException ex) when (!ct.IsCancellationRequested)
            {
                log.Warn($"cannot reach the relay at {url} ({ex.Reason}); retrying in {delay.TotalSeconds:0.0} s");
                await Task.Delay(delay, ct).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    /// <summary>Drains: stops taking jobs, lets jobs in progress finish (up to the configured drain timeout), disconnects.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        _log.Info($"sidecar {Owner}: draining ({_config.Jobs.DrainTimeout.TotalSeconds:0.#} s at most)");
        await Task.WhenAll(_runners.Select(r => r.StopAsync(_config.Jobs.DrainTimeout))).ConfigureAwait(false);
        await _client.CloseAsync().ConfigureAwait(false);
        _log.Info($"sidecar {Owner}: stopped; {Stats}");
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
