using FastRelay.Core;
using FastRelay.Transport;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FastRelay.Server;

/// <summary>Runs the engine and the listeners for the lifetime of the host (Ctrl+C / SIGTERM stop it cleanly).</summary>
internal sealed class RelayHostedService(RelayOptions relayOptions, TransportOptions transportOptions, ILogger<RelayHostedService> logger) : IHostedService, IAsyncDisposable
{
    private RelayEngine? _engine;
    private RelayServer? _server;
    private readonly CancellationTokenSource _stopping = new();
    private Task? _statsLoop;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _engine = new RelayEngine(relayOptions);
        _server = new RelayServer(_engine, transportOptions, logger);
        _server.Start();
        if (relayOptions.StatsInterval > TimeSpan.Zero)
        {
            _statsLoop = PublishStatsAsync(_engine, relayOptions.StatsInterval, _stopping.Token);
        }

        logger.LogInformation(
            "FastRelay ready: {Shards} shards, tenants: {Tenants}; ws={Ws} tcp={Tcp} unix={Unix}",
            _engine.ShardCount,
            relayOptions.Tenancy.RequiresToken ? string.Join(",", relayOptions.Tenancy.Tenants.Select(t => t.Name)) : "default (no token)",
            _server.WebSocketUri?.ToString() ?? "off",
            _server.TcpUri?.ToString() ?? "off",
            _server.UnixPath ?? "off");
        return Task.CompletedTask;
    }

    /// <summary>Every interval: node statistics to <c>$sys.stats</c> and one log line.</summary>
    private async Task PublishStatsAsync(RelayEngine engine, TimeSpan interval, CancellationToken stop)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                engine.PublishStats(started.ElapsedMilliseconds);
                logger.LogInformation(
                    "stats: sessions={Sessions} published={Published} delivered={Delivered} backoffs={Backoffs} slow_consumers={Slow} gc_allocated={Allocated}",
                    engine.SessionsOpen, engine.Published, engine.Delivered, engine.Backoffs, engine.SlowConsumers, GC.GetTotalAllocatedBytes());
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        if (_statsLoop is not null)
        {
            await _statsLoop.ConfigureAwait(false);
        }

        if (_server is not null)
        {
            logger.LogInformation("Stopping: draining {Connections} connections", _server.ConnectionCount);
            await _server.DrainAsync(cancellationToken).ConfigureAwait(false);
        }

        _engine?.Dispose();
        logger.LogInformation("Stopped");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
        }

        _engine?.Dispose();
    }
}
