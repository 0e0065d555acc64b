using FastRelay.LoadGen.Reports;
using FastRelay.LoadGen.Scenarios;
using FastRelay.LoadGen.Targets;

namespace FastRelay.LoadGen.Measurement;

/// <summary>
/// --diagnostics for one FastRelay run: the EventPipe GC probe and the <c>$sys.stats</c> watcher, both attached
/// before the clients connect, both cut to the measured window. A part that cannot attach is reported in the
/// results (diagnostics error) and the run goes on without it.
/// </summary>
internal sealed class ServerDiagnostics : IAsyncDisposable
{
    private readonly GcProbeProcess? _probe;
    private readonly StatsWatcher? _stats;
    private readonly List<string> _errors;
    private long _fromTicks;
    private long _toTicks;

    private ServerDiagnostics(GcProbeProcess? probe, StatsWatcher? stats, List<string> errors)
    {
        _probe = probe;
        _stats = stats;
        _errors = errors;
    }

    public static async Task<ServerDiagnostics> StartAsync(TargetProcess target, string? probePath, string label)
    {
        var errors = new List<string>();
        GcProbeProcess? probe = null;
        StatsWatcher? stats = null;
        try
        {
            probe = await GcProbeProcess.StartAsync(probePath ?? GcProbeProcess.DefaultPath, target.Pid).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            errors.Add($"EventPipe probe: {ex.Message}");
        }

        if (target.TcpEndPoint is { } endPoint)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                stats = await StatsWatcher.StartAsync(endPoint, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidOperationException or System.Net.Sockets.SocketException or IOException or OperationCanceledException)
            {
                errors.Add($"$sys.stats: {ex.Message}");
            }
        }

        Progress.Line($"[{label}] diagnostics: EventPipe probe {(probe is null ? "NOT attached" : $"attached to pid {target.Pid}")}, $sys.stats {(stats is null ? "NOT subscribed" : "subscribed")}" +
                      (errors.Count > 0 ? $" ({string.Join("; ", errors)})" : ""));
        return new ServerDiagnostics(probe, stats, errors);
    }

    /// <summary>The measured window opens (Stopwatch ticks of this process).</summary>
    public void Begin(long ticks)
    {
        _fromTicks = ticks;
        _probe?.Begin();
    }

    public void End(long ticks)
    {
        _toTicks = ticks;
        _probe?.End();
    }

    /// <summary>Fills the server GC figures of <paramref name="result"/>; <paramref name="delivered"/> is the load generator's count in the window.</summary>
    public async Task CompleteAsync(PubSubResult result, long delivered)
    {
        if (_probe is not null)
        {
            try
            {
                var gc = await _probe.ResultAsync().ConfigureAwait(false);
                result.ServerGc = gc;
                if (delivered > 0)
                {
                    result.ServerAllocBytesPerDelivery = gc.AllocationTickBytes / (double)delivered;
                    result.ServerCounterAllocBytesPerDelivery = gc.CounterCoveredSeconds > 0
                        ? gc.CounterAllocatedBytes / gc.CounterCoveredSeconds * gc.WindowSeconds / delivered
                        : double.NaN;
                    result.ServerGcsPerMillionDeliveries = gc.Collections.Sum() * 1e6 / delivered;
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.Text.Json.JsonException or KeyNotFoundException)
            {
                _errors.Add($"EventPipe probe: {ex.Message}");
            }
        }

        if (_stats?.Within(_fromTicks, _toTicks) is var (first, last))
        {
            result.StatsSeconds = (last.ReceivedTicks - first.ReceivedTicks) / (double)System.Diagnostics.Stopwatch.Frequency;
            result.StatsDelivered = last.Delivered - first.Delivered;
            result.StatsAllocatedBytes = last.GcAllocatedBytes - first.GcAllocatedBytes;
            result.StatsCollections = [(int)(last.Gen0 - first.Gen0), (int)(last.Gen1 - first.Gen1), (int)(last.Gen2 - first.Gen2)];
            result.StatsAllocBytesPerDelivery = result.StatsDelivered > 0 ? result.StatsAllocatedBytes / (double)result.StatsDelivered : double.NaN;
        }
        else if (_stats is not null)
        {
            _errors.Add("$sys.stats: fewer than two samples inside the window (make the window longer than 2 s)");
        }

        result.DiagnosticsError = _errors.Count > 0 ? string.Join("; ", _errors) : null;
    }

    public async ValueTask DisposeAsync()
    {
        if (_probe is not null)
        {
            await _probe.DisposeAsync().ConfigureAwait(false);
        }

        if (_stats is not null)
        {
            await _stats.DisposeAsync().ConfigureAwait(false);
        }
    }
}
