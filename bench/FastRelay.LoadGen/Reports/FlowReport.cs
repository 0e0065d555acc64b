using System.Globalization;
using System.Text;
using System.Text.Json;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Scenarios;

namespace FastRelay.LoadGen.Reports;

/// <summary>Markdown and JSON for noisy-tenant and slow-consumer: every run is a row (baseline, then stressed).</summary>
internal static class FlowReport
{
    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string Variant(LoadGenOptions o, FlowResult r) => o.Scenario == Scenario.NoisyTenant
        ? (r.Variant == FlowVariant.Baseline ? "baseline (acme silent)" : "acme flooding")
        : (r.Variant == FlowVariant.Baseline ? "baseline (no slow)" : F($"{r.Slow} slow"));

    public static string Markdown(LoadGenOptions o, MachineInfo machine, IReadOnlyList<FlowResult> results)
    {
        var md = new StringBuilder();
        string rate = F($"{o.Rates[0]:N0} msg/s");
        if (o.Scenario == Scenario.NoisyTenant)
        {
            md.AppendLine(F($"### noisy-tenant: {FlowControlRun.QuietTenant} = {o.Publishers} publisher(s) × {rate} → {o.Subscribers} subscribers; {FlowControlRun.NoisyTenant} = {o.FloodPublishers} publishers × {(o.FloodRate == 0 ? "max rate" : F($"{o.FloodRate:N0} msg/s"))} (window {o.FloodWindow}) → {o.FloodSubscribers} subscriber(s) per topic; {o.PayloadBytes} B, {o.DurationSeconds:0.#} s"));
            md.AppendLine();
            md.AppendLine("FastRelay only: Redis has no tenants. Latency, delivered and lost are tenant globex's; the acme columns are the flooding tenant's.");
            md.AppendLine();
            md.AppendLine("| target | run | globex delivered msg/s | p50 µs | p99 µs | p99.9 µs | max µs | lost | globex backoffs | acme sent msg/s | acme accepted msg/s | acme delivered msg/s | acme backoffs | server CPU s | load avg |");
            md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var r in results)
            {
                md.AppendLine(r.Failure is not null
                    ? F($"| {r.Target} | {Variant(o, r)} | failed: {r.Failure} |||||||||||||")
                    : F($"| {r.Target} | {Variant(o, r)} | {r.DeliveredPerSecond:N0} | {r.P50Us:N0} | {r.P99Us:N0} | {r.P999Us:N0} | {r.MaxUs:N0} | {r.Lost:N0} | {r.Backoffs:N0} | {r.FloodSentPerSecond:N0} | {r.FloodAcceptedPerSecond:N0} | {r.FloodDeliveredPerSecond:N0} | {r.FloodBackoffs:N0} | {r.ServerCpuSeconds:0.00} | {r.LoadAverage:0.0} |"));
            }
        }
        else
        {
            md.AppendLine(F($"### slow-consumer: 1 topic, {o.Subscribers} fast subscribers (+ {o.SlowSubscribers} that never read, SO_RCVBUF {o.SlowReceiveBufferBytes} B), {o.Publishers} publisher(s) × {rate}, {o.PayloadBytes} B; {o.DroppablePercent} % droppable, {o.PartialPercent} % partial, {100 - o.DroppablePercent - o.PartialPercent} % critical; {o.DurationSeconds:0.#} s"));
            md.AppendLine();
            md.AppendLine("Latency, delivered and lost are the fast subscribers'. \"server closed at\" = seconds after publishing began at which the server's open-socket count fell (polled every 100 ms from /proc/PID/fd).");
            md.AppendLine();
            md.AppendLine("| target | run | fast delivered msg/s | p50 µs | p99 µs | p99.9 µs | max µs | fast lost | fast closed | slow closed / open | server counted slow consumers (s: count) | server closed socket at (s) | slow sockets server still held after the run | bytes slow ones read after the run | server CPU s | server peak RSS MiB | load avg |");
            md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|");
            foreach (var r in results)
            {
                string closes = r.ServerSocketCloses.Count == 0 ? "–" : string.Join(", ", r.ServerSocketCloses.Select(t => t.ToString("0.0", CultureInfo.InvariantCulture)));
                md.AppendLine(r.Failure is not null
                    ? F($"| {r.Target} | {Variant(o, r)} | failed: {r.Failure} |||||||||||||")
                    : F($"| {r.Target} | {Variant(o, r)} | {r.DeliveredPerSecond:N0} | {r.P50Us:N0} | {r.P99Us:N0} | {r.P999Us:N0} | {r.MaxUs:N0} | {r.Lost:N0} | {r.UnexpectedCloses:N0} | {(r.Slow == 0 ? "–" : F($"{r.SlowClosed} / {r.SlowOpen}"))} | {Counted(r)} | {closes} | {(r.Slow == 0 ? "–" : r.SlowSocketsHeldByServer.ToString(CultureInfo.InvariantCulture))} | {r.SlowBytesAfterRun:N0} | {r.ServerCpuSeconds:0.00} | {r.ServerPeakRssBytes / 1048576.0:0.0} | {r.LoadAverage:0.0} |"));
            }
        }

        var problems = results.Where(r => r.FirstError is not null || r.Unanswered != 0 || r.Errors != 0).ToList();
        if (problems.Count > 0)
        {
            md.AppendLine();
            foreach (var r in problems)
            {
                md.AppendLine(F($"- {r.Target} {Variant(o, r)}: unanswered {r.Unanswered}, errors {r.Errors}, closes {r.UnexpectedCloses}, first error: {r.FirstError ?? "none"}"));
            }
        }

        md.AppendLine();
        md.AppendLine(F($"Machine: {machine.Processors} × {machine.CpuModel}, {machine.Runtime}; {machine.FastRelayServer}; {machine.RedisServer}."));
        return md.ToString();
    }

    /// <summary>The first second at which each new slow_consumers count appeared, e.g. "3.0: 5".</summary>
    private static string Counted(FlowResult r)
    {
        if (r.SlowConsumerCounts.Count == 0)
        {
            return "–";
        }

        var steps = new List<string>();
        long last = 0;
        foreach (var (seconds, count) in r.SlowConsumerCounts)
        {
            if (count != last && seconds >= -1)
            {
                steps.Add(F($"{seconds:0.0}: {count}"));
                last = count;
            }
        }

        return steps.Count == 0 ? "0" : string.Join(", ", steps);
    }

    public static List<string> Write(LoadGenOptions o, MachineInfo machine, IReadOnlyList<FlowResult> results, string markdown)
    {
        Directory.CreateDirectory(o.OutDir);
        string md = Path.Combine(o.OutDir, $"{o.OutputName}.md");
        File.WriteAllText(md, markdown);
        string json = Path.Combine(o.OutDir, $"{o.OutputName}.json");
        using (var stream = File.Create(json))
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("tool", "fastrelay-loadgen");
            w.WriteString("scenario", o.ScenarioName);
            w.WriteString("started_at", machine.StartedAt);
            w.WriteString("fastrelay_server", machine.FastRelayServer);
            w.WriteString("redis_server", machine.RedisServer);
            w.WriteStartObject("options");
            w.WriteNumber("subscribers", o.Subscribers);
            w.WriteNumber("publishers", o.Publishers);
            w.WriteNumber("rate", o.Rates[0]);
            w.WriteNumber("payload_bytes", o.PayloadBytes);
            w.WriteNumber("duration_s", o.DurationSeconds);
            w.WriteNumber("warmup_s", o.WarmupSeconds);
            w.WriteNumber("window", o.Window);
            w.WriteNumber("flood_publishers", o.FloodPublishers);
            w.WriteNumber("flood_subscribers", o.FloodSubscribers);
            w.WriteNumber("flood_window", o.FloodWindow);
            w.WriteNumber("flood_rate", o.FloodRate);
            w.WriteNumber("slow", o.SlowSubscribers);
            w.WriteNumber("droppable_percent", o.DroppablePercent);
            w.WriteNumber("partial_percent", o.PartialPercent);
            w.WriteNumber("slow_rcvbuf", o.SlowReceiveBufferBytes);
            w.WriteEndObject();
            w.WriteStartArray("runs");
            foreach (var r in results)
            {
                w.WriteStartObject();
                w.WriteString("target", r.Target);
                w.WriteString("variant", r.Variant == FlowVariant.Baseline ? "baseline" : "stressed");
                w.WriteNumber("repeat", r.Repeat);
                if (r.Failure is not null)
                {
                    w.WriteString("failure", r.Failure);
                }

                w.WriteNumber("measured_s", r.MeasuredSeconds);
                w.WriteNumber("sent_per_s", r.SentPerSecond);
                w.WriteNumber("delivered_per_s", r.DeliveredPerSecond);
                w.WriteNumber("latency_samples", r.LatencySamples);
                w.WriteNumber("p50_us", r.P50Us);
                w.WriteNumber("p99_us", r.P99Us);
                w.WriteNumber("p999_us", r.P999Us);
                w.WriteNumber("max_us", r.MaxUs);
                w.WriteNumber("expected", r.Expected);
                w.WriteNumber("received", r.Received);
                w.WriteNumber("lost", r.Lost);
                w.WriteNumber("backoffs", r.Backoffs);
                w.WriteNumber("unanswered", r.Unanswered);
                w.WriteNumber("unexpected_closes", r.UnexpectedCloses);
                w.WriteNumber("errors", r.Errors);
                if (r.FirstError is not null)
                {
                    w.WriteString("first_error", r.FirstError);
                }

                w.WriteNumber("flood_sent", r.FloodSent);
                w.WriteNumber("flood_sent_per_s", r.FloodSentPerSecond);
                w.WriteNumber("flood_accepted_per_s", r.FloodAcceptedPerSecond);
                w.WriteNumber("flood_delivered_per_s", r.FloodDeliveredPerSecond);
                w.WriteNumber("flood_backoffs", r.FloodBackoffs);
                w.WriteNumber("flood_unexpected_closes", r.FloodUnexpectedCloses);
                w.WriteNumber("slow", r.Slow);
                w.WriteNumber("slow_closed", r.SlowClosed);
                w.WriteNumber("slow_open", r.SlowOpen);
                w.WriteNumber("slow_bytes_after_run", r.SlowBytesAfterRun);
                w.WriteNumber("slow_sockets_held_by_server", r.SlowSocketsHeldByServer);
                w.WriteStartArray("server_slow_consumers");
                foreach (var (seconds, count) in r.SlowConsumerCounts)
                {
                    w.WriteStartArray();
                    w.WriteNumberValue(Math.Round(seconds, 2));
                    w.WriteNumberValue(count);
                    w.WriteEndArray();
                }

                w.WriteEndArray();
                w.WriteStartArray("server_socket_closes_s");
                foreach (double t in r.ServerSocketCloses)
                {
                    w.WriteNumberValue(Math.Round(t, 2));
                }

                w.WriteEndArray();
                w.WriteNumber("server_cpu_s", r.ServerCpuSeconds);
                w.WriteNumber("server_peak_rss_bytes", r.ServerPeakRssBytes);
                w.WriteNumber("load_average", r.LoadAverage);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return [json, md];
    }
}
