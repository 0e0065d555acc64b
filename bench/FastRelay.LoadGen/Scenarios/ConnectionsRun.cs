using System.Diagnostics;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Reports;
using FastRelay.LoadGen.Targets;
using FastRelay.LoadGen.Wire;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>
/// Opens N idle connections (each upgraded and greeted: WebSocket upgrade + HELLO/WELCOME, or PING/PONG for
/// Redis) and reads the server's RSS before, after a warm-up slice, and after all of them.
/// The clients then stay silent and post no receive: the server sees truly idle sockets. For FastRelay a
/// <c>$sys.stats</c> watcher (one more raw-TCP connection, opened before the baseline) adds the server's own view:
/// allocation per connect, managed heap per connection, and the GC's committed memory, to set against RSS.
/// </summary>
internal static class ConnectionsRun
{
    private const int ClientBufferBytes = 1024;
    private static readonly TimeSpan OpenTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan StatsTimeout = TimeSpan.FromSeconds(5);
    private const int MinGcsForAfterGcFigures = 3;
    private static readonly string[] StatsEverySecond = ["--Relay:StatsInterval", "00:00:01"];

    public static async Task<ConnectionsResult> RunAsync(TargetKind kind, LoadGenOptions options)
    {
        string label = $"connections {kind.Name()}";
        string logPath = Path.Combine(options.OutDir, "logs", $"connections-{kind.Name()}.log");
        Progress.Line($"[{label}] starting {kind.Name()} (log: {logPath})");
        await using var target = await TargetProcess.StartAsync(kind, options, logPath, kind.IsFastRelay() ? StatsEverySecond : null).ConfigureAwait(false);
        await using var stats = kind.IsFastRelay() && target.TcpEndPoint is { } statsEndPoint
            ? await StatsWatcher.StartAsync(statsEndPoint, CancellationToken.None).ConfigureAwait(false)
            : null;
        var result = new ConnectionsResult { Target = kind.Name(), Server = target.Description, Requested = options.Connections };
        var wire = WireProtocol.For(target);
        var connector = new Connector(target, wire, options.SourceIps, ClientBufferBytes);
        var connections = new ClientConnection?[options.Connections];
        int failed = 0;
        string? firstError = null;

        async Task OpenRangeAsync(int from, int to, CancellationToken cancellationToken)
        {
            await Connector.ForEachAsync(from, to, options.ConnectParallelism, cancellationToken, async (i, ct) =>
            {
                try
                {
                    connections[i] = await connector.OpenAsync(i, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Interlocked.Increment(ref failed);
                    Interlocked.CompareExchange(ref firstError, ex.Message, null);
                }
            }).ConfigureAwait(false);
        }

        try
        {
            await Task.Delay(500).ConfigureAwait(false);
            result.RssBaselineBytes = target.RssBytes();
            double cpu0 = target.CpuSeconds();
            using var timeout = new CancellationTokenSource(OpenTimeout);
            long start = Stopwatch.GetTimestamp();

            // A warm-up slice first: pools, thread-pool threads and code pages that the first connections pull
            // in are one-time costs; the marginal figure excludes them.
            int warm = Math.Max(1, Math.Min(1000, options.Connections / 10));
            result.WarmConnections = warm;
            await OpenRangeAsync(0, warm, timeout.Token).ConfigureAwait(false);
            await Task.Delay(500).ConfigureAwait(false);
            result.RssWarmBytes = target.RssBytes();
            var warmStats = stats is null ? null : await stats.NextAsync(Stopwatch.GetTimestamp(), StatsTimeout).ConfigureAwait(false);
            int warmOpened = connections.Count(c => c is not null);
            Progress.Line($"[{label}] {warmOpened} warm-up connections open; RSS {result.RssWarmBytes / 1048576.0:0.0} MiB");

            using (var opening = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token))
            {
                var progress = ReportProgressAsync(label, connections, () => Volatile.Read(ref failed), opening.Token);
                await OpenRangeAsync(warm, options.Connections, timeout.Token).ConfigureAwait(false);
                result.OpenSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                opening.Cancel();
                await progress.ConfigureAwait(false);
            }

            await Task.Delay(TimeSpan.FromSeconds(options.SettleSeconds)).ConfigureAwait(false);
            result.RssAfterBytes = target.RssBytes();
            var afterStats = stats is null ? null : await stats.NextAsync(Stopwatch.GetTimestamp(), StatsTimeout).ConfigureAwait(false);
            result.PeakRssBytes = target.PeakRssBytes();
            result.LoadAverage = Measurement.MachineInfo.LoadAverage();
            result.ServerCpuSeconds = target.CpuSeconds() - cpu0;
            result.Opened = connections.Count(c => c is not null);
            result.Failed = failed;
            result.FirstError = firstError;
            if (target.HasExited)
            {
                result.Failure = "the server exited while connections were open";
            }

            if (result.Opened > 0)
            {
                result.BytesPerConnection = (result.RssAfterBytes - result.RssBaselineBytes) / (double)result.Opened;
            }

            int afterWarm = result.Opened - warmOpened;
            if (afterWarm > 0)
            {
                result.MarginalBytesPerConnection = (result.RssAfterBytes - result.RssWarmBytes) / (double)afterWarm;
                result.ProjectedBytesAt1M = result.RssBaselineBytes + result.MarginalBytesPerConnection * 1_000_000;
                if (warmStats is { } w && afterStats is { } a && a.HeapBytes > 0)
                {
                    result.Heap = HeapSplit(w, a, afterWarm);
                }
            }

            Progress.Line(
                $"[{label}] {result.Opened:N0} open ({result.Failed} failed) in {result.OpenSeconds:0.0} s; RSS {result.RssBaselineBytes / 1048576.0:0.0} → " +
                $"{result.RssAfterBytes / 1048576.0:0.0} MiB: {result.BytesPerConnection:N0} B/conn overall, {result.MarginalBytesPerConnection:N0} B/conn marginal" +
                (firstError is null ? "" : $"; first error: {firstError}"));
            if (result.Heap is { } heap)
            {
                Progress.Line(
                    $"[{label}] server heap, marginal: {heap.AllocatedBytesPerConnect:N0} B allocated per connect, heap +{heap.HeapBytesPerConnection:N0} B/conn (garbage included), " +
                    $"after-GC heap +{heap.LastGcHeapBytesPerConnection?.ToString("N0") ?? "n/a"} B/conn, fragmentation +{heap.LastGcFragmentedBytesPerConnection?.ToString("N0") ?? "n/a"} B/conn, " +
                    $"GC committed +{heap.CommittedBytesPerConnection?.ToString("N0") ?? "n/a"} B/conn; {heap.GcsDuringOpen} GCs while opening; " +
                    $"after: heap {heap.HeapAfterBytes / 1048576.0:0.0} MiB, after-GC heap {heap.LastGcHeapAfterBytes / 1048576.0:0.0} MiB (fragmented {heap.LastGcFragmentedAfterBytes / 1048576.0:0.0}), committed {heap.CommittedAfterBytes / 1048576.0:0.0} MiB");
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            result.Failure = ex.Message;
            Progress.Line($"[{label}] FAILED: {ex.Message}");
        }
        finally
        {
            foreach (var c in connections)
            {
                c?.Dispose();
            }
        }

        return result;
    }

    private static ConnectionsHeap HeapSplit(StatsSample warm, StatsSample after, int connections)
    {
        // An idle server rarely collects: with one or two GCs in the window the after-GC figures compare heaps left at
        // arbitrary points of the opening, so they are only reported when several GCs ran between the samples.
        bool collected = after.GcIndex - warm.GcIndex >= MinGcsForAfterGcFigures;
        return new ConnectionsHeap
        {
            AllocatedBytesPerConnect = (after.GcAllocatedBytes - warm.GcAllocatedBytes) / (double)connections,
            HeapBytesPerConnection = (after.HeapBytes - warm.HeapBytes) / (double)connections,
            LastGcHeapBytesPerConnection = collected ? (after.LastGcHeapBytes - warm.LastGcHeapBytes) / (double)connections : null,
            LastGcFragmentedBytesPerConnection = collected ? (after.LastGcFragmentedBytes - warm.LastGcFragmentedBytes) / (double)connections : null,
            CommittedBytesPerConnection = collected ? (after.CommittedBytes - warm.CommittedBytes) / (double)connections : null,
            GcsDuringOpen = after.GcIndex - warm.GcIndex,
            HeapAfterBytes = after.HeapBytes,
            LastGcHeapAfterBytes = after.LastGcHeapBytes,
            LastGcFragmentedAfterBytes = after.LastGcFragmentedBytes,
            CommittedAfterBytes = after.CommittedBytes,
        };
    }

    private static async Task ReportProgressAsync(string label, ClientConnection?[] connections, Func<int> failed, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(1000, cancellationToken).ConfigureAwait(false);
                Progress.Line($"[{label}] open {connections.Count(c => c is not null):N0}/{connections.Length:N0}, failed {failed()}");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
