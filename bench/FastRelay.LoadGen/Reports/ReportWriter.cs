using System.Globalization;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Measurement;

namespace FastRelay.LoadGen.Reports;

/// <summary>Writes a scenario's results under --out: JSON, Markdown and the SVG charts; returns the paths.</summary>
internal static class ReportWriter
{
    private static readonly string[] s_percentiles = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];

    /// <param name="runs">Every run (JSON lists them all).</param>
    /// <param name="results">One row per (rate, target), medians with --repeat (the charts use these).</param>
    public static List<string> WritePubSub(LoadGenOptions options, MachineInfo machine, IReadOnlyList<PubSubResult> runs, IReadOnlyList<PubSubResult> results, string markdown)
    {
        var files = new List<string>();
        string name = options.OutputName;
        files.Add(WriteJson(options, machine, runs, [], name, options.Repeats > 1 ? results : null));
        files.Add(WriteText(options, $"{name}.md", markdown));

        foreach (int rate in results.Select(r => r.Rate).Distinct())
        {
            var series = results
                .Where(r => r.Rate == rate && r.Failure is null && r.LatencySamples > 0)
                .Select(r => (r.Target, new[] { r.P50Us, r.P90Us, r.P99Us, r.P999Us, r.P9999Us, r.MaxUs }))
                .ToList();
            if (series.Count == 0)
            {
                continue;
            }

            string rateLabel = rate == 0 ? "max rate" : $"{rate} msg/s per publisher";
            string title = $"{options.ScenarioName}: publish→deliver latency — {Shape(options)}, {rateLabel}";
            string file = options.IsSweep ? $"{name}-latency-r{rate}.svg" : $"{name}-latency.svg";
            files.Add(WriteText(options, file, SvgCharts.LatencyPercentiles(title, s_percentiles, series)));
        }

        if (options.IsSweep)
        {
            var curves = results
                .Where(r => r.Failure is null && r.LatencySamples > 0)
                .GroupBy(r => r.Target)
                .Select(g => (g.Key, g.Select(r => (r.DeliveredPerSecond, r.P99Us, r.P999Us, r.RateLabel)).ToArray()))
                .ToList();
            if (curves.Count > 0)
            {
                files.Add(WriteText(options, $"{name}-latency-vs-throughput.svg",
                    SvgCharts.LatencyVsThroughput($"{options.ScenarioName}: latency vs delivered throughput — {Shape(options)}; rates {string.Join(", ", options.Rates.Select(r => r == 0 ? "max" : r.ToString(CultureInfo.InvariantCulture)))} msg/s per publisher", curves)));
            }
        }

        return files;
    }

    public static List<string> WriteConnections(LoadGenOptions options, MachineInfo machine, IReadOnlyList<ConnectionsResult> results, string markdown)
    {
        var files = new List<string>
        {
            WriteJson(options, machine, [], results, options.OutputName, null),
            WriteText(options, $"{options.OutputName}.md", markdown),
        };
        var bars = new List<(string, string, double)>();
        foreach (var r in results.Where(r => r.Opened > 0))
        {
            bars.Add(($"{r.Target}\nmarginal", r.Target, r.MarginalBytesPerConnection));
            bars.Add(($"{r.Target}\nall {r.Opened:N0}", r.Target, r.BytesPerConnection));
        }

        if (bars.Count > 0)
        {
            files.Add(WriteText(options, $"{options.OutputName}-memory.svg",
                SvgCharts.Bars(
                    string.Create(CultureInfo.InvariantCulture, $"Server RSS per idle connection — {options.Connections:N0} connections per target; marginal = after the first {results.FirstOrDefault()?.WarmConnections ?? 0:N0}"),
                    "bytes per connection (VmRSS delta)",
                    bars,
                    (2048, "FastRelay design target: 2 KB per idle WebSocket connection"))));
        }

        return files;
    }

    private static string Shape(LoadGenOptions o) => o.Topics == 1
        ? $"{o.Subscribers} subscribers, {o.Publishers} publisher(s), {o.PayloadBytes} B"
        : $"{o.Topics}×{o.Subscribers} subscribers, {o.Publishers} publishers, {o.PayloadBytes} B";

    private static string WriteJson(LoadGenOptions options, MachineInfo machine, IReadOnlyList<PubSubResult> pubSub, IReadOnlyList<ConnectionsResult> connections, string name, IReadOnlyList<PubSubResult>? medians)
    {
        string path = Path.Combine(options.OutDir, $"{name}.json");
        Directory.CreateDirectory(options.OutDir);
        using var stream = File.Create(path);
        JsonReport.Write(stream, options, machine, pubSub, connections, medians);
        return path;
    }

    private static string WriteText(LoadGenOptions options, string file, string text)
    {
        string path = Path.Combine(options.OutDir, file);
        Directory.CreateDirectory(options.OutDir);
        File.WriteAllText(path, text);
        return path;
    }
}
