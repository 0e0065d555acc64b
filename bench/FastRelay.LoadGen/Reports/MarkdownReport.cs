using System.Globalization;
using System.Text;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Measurement;

namespace FastRelay.LoadGen.Reports;

/// <summary>The Markdown tables printed to stdout and written beside the JSON.</summary>
internal static class MarkdownReport
{
    /// <param name="runs">Every run.</param>
    /// <param name="results">One row per (rate, target): the runs themselves, or their medians with --repeat.</param>
    public static string PubSub(LoadGenOptions options, MachineInfo machine, IReadOnlyList<PubSubResult> runs, IReadOnlyList<PubSubResult> results)
    {
        var md = new StringBuilder();
        md.AppendLine(F($"### {options.ScenarioName}: {Shape(options)}"));
        md.AppendLine();
        md.AppendLine(F($"{options.PayloadBytes}-byte payload, {options.DurationSeconds:0.#} s measured after {options.WarmupSeconds:0.#} s warm-up, flow-control window {options.Window} per publisher; machine: {machine.Processors} × {machine.CpuModel}, {machine.Runtime}; client and server share the machine."));
        if (options.Repeats > 1)
        {
            md.AppendLine(F($"Each row is the **median of {options.Repeats} interleaved runs** (max µs: the largest; lost, backoffs, errors: summed). Every run is listed below."));
        }

        md.AppendLine();
        // --diagnostics: the server's GC figures sit next to its throughput (n/a for Redis).
        bool gc = options.Diagnostics;
        md.AppendLine("| target | rate/publisher | sent msg/s | delivered msg/s | p50 µs | p99 µs | p99.9 µs | max µs | lost | server CPU s | server CPU ns/delivery | server peak RSS MiB |" +
                      (gc ? " server alloc B/msg (EventPipe) | server alloc B/msg ($sys.stats) | server GCs gen0/1/2 (EventPipe) | server GCs per 1M msgs |" : ""));
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + (gc ? "---:|---:|---:|---:|" : ""));
        foreach (var r in results)
        {
            if (r.Failure is not null)
            {
                md.AppendLine(F($"| {r.Target} | {r.RateLabel} | failed: {Cell(r.Failure)} | | | | | | | | | |") + (gc ? " | | | |" : ""));
                continue;
            }

            md.AppendLine(F($"| {r.Target} | {r.RateLabel} | {r.SentPerSecond:N0} | {r.DeliveredPerSecond:N0} | {r.P50Us:N0} | {r.P99Us:N0} | {r.P999Us:N0} | {r.MaxUs:N0} | {r.Lost:N0} | {r.ServerCpuSeconds:0.00} | {Num(r.ServerCpuNsPerDelivery)} | {r.ServerPeakRssBytes / 1048576.0:N1} |") +
                          (gc ? F($" {Bytes(r.ServerAllocBytesPerDelivery)} | {Bytes(r.StatsAllocBytesPerDelivery)} | {Collections(r.ServerGc?.Collections)} | {(double.IsNaN(r.ServerGcsPerMillionDeliveries) ? "n/a" : F($"{r.ServerGcsPerMillionDeliveries:0.##}"))} |") : ""));
        }

        if (gc)
        {
            md.AppendLine();
            md.AppendLine("Server GC in the measured window (--diagnostics). EventPipe: GCAllocationTick (one event per ~100 KB allocated) and GCStart events read from the running server over its diagnostics port, divided by the deliveries the load generator counted; alloc-rate: the System.Runtime counter over the same window; $sys.stats: Δgc_allocated_bytes ÷ Δdelivered between the server's own samples inside the window. The probe's 1 s counters and the 1 s stats tick allocate in the server too (~20–40 KB/s when idle), and count here.");
            md.AppendLine();
            md.AppendLine("| target | rate/publisher | window s | delivered | EventPipe alloc bytes (ticks) | alloc-rate counter B/msg | $sys.stats: s, delivered, alloc bytes, GCs gen0/1/2 | allocating types (NativeAOT reports no type names: MethodTable ids) | diagnostics error |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---|---|---|");
            foreach (var r in results.Where(r => r.Failure is null && r.Target != "redis"))
            {
                var g = r.ServerGc;
                string ticks = g is null ? "n/a" : F($"{g.AllocationTickBytes:N0} ({g.AllocationTicks:N0})");
                string stats = r.StatsCollections is null ? "n/a" : F($"{r.StatsSeconds:0.0} s, {r.StatsDelivered:N0}, {r.StatsAllocatedBytes:N0} B, {Collections(r.StatsCollections)}");
                string types = g is null ? "" : string.Join(", ", g.AllocationByType.Take(4).Select(t => F($"{t.Type} ×{t.Ticks}")));
                md.AppendLine(F($"| {r.Target} | {r.RateLabel} | {g?.WindowSeconds ?? 0:0.0} | {r.DeliveredInWindow:N0} | {ticks} | {Bytes(r.ServerCounterAllocBytesPerDelivery)} | {stats} | {Cell(types)} | {Cell(r.DiagnosticsError ?? "")} |"));
            }

            var seen = results.Select(r => r.ServerGc).FirstOrDefault(g => g is not null);
            if (seen is not null)
            {
                md.AppendLine();
                md.AppendLine(F($"Events the server's runtime emitted to the probe's session (first run): {string.Join(", ", seen.EventsSeen.Select(e => F($"{e.Name} ×{e.Count:N0}")))}."));
            }
        }

        md.AppendLine();
        foreach (var rate in results.Select(r => r.Rate).Distinct())
        {
            var atRate = results.Where(r => r.Rate == rate && r.Failure is null).ToList();
            var redis = atRate.FirstOrDefault(r => r.Target == "redis");
            var relays = atRate.Where(r => r.Target != "redis").ToList();
            if (redis is null || relays.Count == 0)
            {
                continue;
            }

            string label = rate == 0 ? "max rate" : F($"{rate}/s per publisher");
            md.AppendLine(F($"Ratios at {label}:"));
            md.AppendLine(F($"- delivered msgs/s, FastRelay ÷ Redis: {string.Join(", ", relays.Select(r => F($"{r.Target} **{Ratio(r.DeliveredPerSecond, redis.DeliveredPerSecond)}**")))}"));
            md.AppendLine(F($"- p99 latency, Redis ÷ FastRelay: {string.Join(", ", relays.Select(r => F($"{r.Target} **{Ratio(redis.P99Us, r.P99Us)}**")))}"));
            md.AppendLine(F($"- p99.9 latency, Redis ÷ FastRelay: {string.Join(", ", relays.Select(r => F($"{r.Target} **{Ratio(redis.P999Us, r.P999Us)}**")))}"));
            md.AppendLine(F($"- server CPU per delivery, Redis ÷ FastRelay: {string.Join(", ", relays.Select(r => F($"{r.Target} {Ratio(redis.ServerCpuNsPerDelivery, r.ServerCpuNsPerDelivery)}")))}"));
            md.AppendLine();
        }

        md.AppendLine("Run health (a run is only comparable when these are clean):");
        md.AppendLine();
        md.AppendLine("| target | rate/publisher | latency samples | msgs per client receive | server ctx switches/s | server threads | backoffs | unanswered publishes | unexpected closes | errors | client CPU s | client alloc B/delivery | load avg (1 min) | first error |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in results.Where(r => r.Failure is null))
        {
            md.AppendLine(F($"| {r.Target} | {r.RateLabel} | {r.LatencySamples:N0} | {r.MessagesPerReceive:0.0} | {r.ServerContextSwitchesPerSecond:N0} | {r.ServerThreads} | {r.Backoffs:N0} | {r.Unanswered:N0} | {r.UnexpectedCloses:N0} | {r.Errors:N0} | {r.ClientCpuSeconds:0.00} | {(double.IsNaN(r.ClientAllocatedBytesPerDelivery) ? "n/a" : F($"{r.ClientAllocatedBytesPerDelivery:0.00}"))} | {r.LoadAverage:0.0} | {Cell(r.FirstError ?? "")} |"));
        }

        md.AppendLine();
        md.AppendLine("CPU in the window by thread, first run of each (name ×threads: seconds; a thread near the window length is saturated):");
        md.AppendLine();
        foreach (var r in runs.Where(r => r.Failure is null && r.ServerThreadCpu.Count > 0 && r.Repeat <= 1))
        {
            md.AppendLine(F($"- {r.Target} @ {r.RateLabel}: server {Threads(r.ServerThreadCpu)}; load generator {Threads(r.ClientThreadCpu)}"));
        }

        if (options.Repeats > 1)
        {
            md.AppendLine();
            md.AppendLine("All runs:");
            md.AppendLine();
            md.AppendLine("| target | rate/publisher | run | delivered msg/s | p50 µs | p99 µs | p99.9 µs | max µs | lost | server CPU s | load avg |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var r in runs.OrderBy(r => r.Rate).ThenBy(r => r.Target).ThenBy(r => r.Repeat))
            {
                md.AppendLine(r.Failure is not null
                    ? F($"| {r.Target} | {r.RateLabel} | {r.Repeat} | failed: {Cell(r.Failure)} | | | | | | | |")
                    : F($"| {r.Target} | {r.RateLabel} | {r.Repeat} | {r.DeliveredPerSecond:N0} | {r.P50Us:N0} | {r.P99Us:N0} | {r.P999Us:N0} | {r.MaxUs:N0} | {r.Lost:N0} | {r.ServerCpuSeconds:0.00} | {r.LoadAverage:0.0} |"));
            }
        }

        return md.ToString();
    }

    private static string Optional(double? value) => value is { } v ? v.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : "n/a (< 3 GCs)";

    public static string Connections(LoadGenOptions options, MachineInfo machine, IReadOnlyList<ConnectionsResult> results)
    {
        var md = new StringBuilder();
        md.AppendLine(F($"### connections: {options.Connections:N0} idle connections per target"));
        md.AppendLine();
        md.AppendLine("Each connection is upgraded and greeted (WebSocket upgrade + HELLO/WELCOME; raw TCP HELLO/WELCOME; Redis PING/PONG), then left silent. " +
                      "Server RSS (VmRSS) is read before, after a warm-up slice, and after all connections plus a settle period.");
        md.AppendLine();
        md.AppendLine("| target | open | failed | open s | RSS before MiB | RSS after MiB | bytes/conn (all) | bytes/conn (marginal) | **projection**: RSS at 1M conns | load avg |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            if (r.Failure is not null && r.Opened == 0)
            {
                md.AppendLine(F($"| {r.Target} | failed: {Cell(r.Failure)} | | | | | | | | |"));
                continue;
            }

            md.AppendLine(F($"| {r.Target} | {r.Opened:N0} | {r.Failed:N0} | {r.OpenSeconds:0.0} | {r.RssBaselineBytes / 1048576.0:N1} | {r.RssAfterBytes / 1048576.0:N1} | {r.BytesPerConnection:N0} | {r.MarginalBytesPerConnection:N0} | {r.ProjectedBytesAt1M / (1024.0 * 1048576):N2} GiB (projection) | {r.LoadAverage:0.0} |"));
        }

        md.AppendLine();
        if (results.Any(r => r.Heap is not null))
        {
            md.AppendLine();
            md.AppendLine("Server heap over the marginal connections (`$sys.stats` after the warm-up slice and after all connections):");
            md.AppendLine();
            md.AppendLine("| target | allocated B/connect | heap B/conn (garbage included) | after-GC heap B/conn | after-GC fragmentation B/conn | GC committed B/conn | GCs while opening |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var r in results.Where(r => r.Heap is not null))
            {
                var h = r.Heap!;
                md.AppendLine(F($"| {r.Target} | {h.AllocatedBytesPerConnect:N0} | {h.HeapBytesPerConnection:N0} | {Optional(h.LastGcHeapBytesPerConnection)} | {Optional(h.LastGcFragmentedBytesPerConnection)} | {Optional(h.CommittedBytesPerConnection)} | {h.GcsDuringOpen} |"));
            }
        }

        md.AppendLine();
        md.AppendLine("The 1M figure is a linear extrapolation (baseline + marginal bytes × 1,000,000), **not a measurement**: kernel socket memory is not in the process RSS, and a real 1M-connection box needs more source addresses, file descriptors and tuning than this run used.");
        var redis = results.FirstOrDefault(r => r.Target == "redis" && r.Opened > 0);
        if (redis is not null)
        {
            foreach (var r in results.Where(r => r.Target != "redis" && r.Opened > 0))
            {
                md.AppendLine(F($"- marginal bytes per idle connection, Redis ÷ {r.Target}: **{Ratio(redis.MarginalBytesPerConnection, r.MarginalBytesPerConnection)}**"));
            }
        }

        foreach (var r in results.Where(r => r.FirstError is not null))
        {
            md.AppendLine(F($"- {r.Target}: first connection error: {r.FirstError}"));
        }

        return md.ToString();
    }

    private static string Bytes(double v) => double.IsFinite(v) ? F($"{v:0.000}") : "n/a";

    private static string Collections(int[]? c) => c is null ? "n/a" : F($"{c[0]}/{c[1]}/{c[2]}");

    private static string Num(double v) => double.IsFinite(v) ? F($"{v:N0}") : "n/a";

    private static string Threads(List<(string Name, double CpuSeconds, int Threads)> groups) =>
        string.Join(", ", groups.Where(t => t.CpuSeconds >= 0.005).Take(5).Select(t => F($"{t.Name} ×{t.Threads}: {t.CpuSeconds:0.00}")));

    private static string Shape(LoadGenOptions o) => o.Scenario switch
    {
        Scenario.Rooms => F($"{o.Topics:N0} topics × {o.Subscribers:N0} subscribers, {o.Publishers} publishers"),
        _ => F($"{o.Topics} topic × {o.Subscribers:N0} subscribers, {o.Publishers} publisher{(o.Publishers == 1 ? "" : "s")}"),
    };

    private static string Ratio(double numerator, double denominator) =>
        denominator > 0 && numerator > 0 && !double.IsNaN(numerator) && !double.IsNaN(denominator) ? F($"{numerator / denominator:0.00}×") : "n/a";

    private static string Cell(string s) => s.Replace("|", "\\|").Replace("\n", " ");

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
