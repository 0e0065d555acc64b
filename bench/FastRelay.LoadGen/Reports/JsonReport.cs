using System.Text.Json;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Measurement;

namespace FastRelay.LoadGen.Reports;

/// <summary>Results as JSON, written with Utf8JsonWriter (no reflection: Native-AOT safe).</summary>
internal static class JsonReport
{
    public static void Write(Stream stream, LoadGenOptions options, MachineInfo machine, IReadOnlyList<PubSubResult> pubSub, IReadOnlyList<ConnectionsResult> connections, IReadOnlyList<PubSubResult>? medians)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("tool", "fastrelay-loadgen");
        w.WriteString("scenario", options.ScenarioName);
        w.WriteString("started_at", machine.StartedAt);

        w.WriteStartObject("machine");
        w.WriteNumber("processors", machine.Processors);
        w.WriteString("cpu_model", machine.CpuModel);
        w.WriteNumber("memory_bytes", machine.MemoryBytes);
        w.WriteString("kernel", machine.Kernel);
        w.WriteString("os", machine.Os);
        w.WriteString("runtime", machine.Runtime);
        w.WriteString("fastrelay_server", machine.FastRelayServer);
        w.WriteString("redis_server", machine.RedisServer);
        w.WriteNumber("open_files_limit", machine.OpenFilesLimit);
        w.WriteEndObject();

        w.WriteStartObject("options");
        w.WriteStartArray("targets");
        foreach (var t in options.Targets)
        {
            w.WriteStringValue(Targets.TargetKinds.Name(t));
        }

        w.WriteEndArray();
        w.WriteNumber("topics", options.Topics);
        w.WriteNumber("subscribers_per_topic", options.Subscribers);
        w.WriteNumber("publishers", options.Publishers);
        w.WriteStartArray("rates");
        foreach (int r in options.Rates)
        {
            w.WriteNumberValue(r);
        }

        w.WriteEndArray();
        w.WriteNumber("payload_bytes", options.PayloadBytes);
        w.WriteNumber("duration_s", options.DurationSeconds);
        w.WriteNumber("warmup_s", options.WarmupSeconds);
        w.WriteNumber("drain_s", options.DrainSeconds);
        w.WriteNumber("window", options.Window);
        w.WriteNumber("repeat", options.Repeats);
        w.WriteNumber("connections", options.Connections);
        if (options.Shards is int shards)
        {
            w.WriteNumber("shards", shards);
        }

        w.WriteEndObject();

        w.WriteStartArray("runs");
        foreach (var r in pubSub)
        {
            WritePubSub(w, r);
        }

        foreach (var r in connections)
        {
            WriteConnections(w, r);
        }

        w.WriteEndArray();
        if (medians is not null)
        {
            w.WriteStartArray("medians");
            foreach (var r in medians)
            {
                WritePubSub(w, r);
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
    }

    private static void WritePubSub(Utf8JsonWriter w, PubSubResult r)
    {
        w.WriteStartObject();
        w.WriteString("target", r.Target);
        w.WriteString("server", r.Server);
        w.WriteNumber("repeat", r.Repeat);
        w.WriteNumber("runs", r.Runs);
        w.WriteNumber("rate_per_publisher", r.Rate);
        w.WriteNumber("topics", r.Topics);
        w.WriteNumber("subscribers_per_topic", r.SubscribersPerTopic);
        w.WriteNumber("publishers", r.Publishers);
        w.WriteNumber("payload_bytes", r.PayloadBytes);
        w.WriteNumber("window", r.Window);
        WriteNullable(w, "failure", r.Failure);
        w.WriteNumber("setup_s", Round(r.SetupSeconds));
        w.WriteNumber("measured_s", Round(r.MeasuredSeconds));
        w.WriteNumber("sent", r.SentInWindow);
        w.WriteNumber("sent_per_s", Round(r.SentPerSecond));
        w.WriteNumber("delivered", r.DeliveredInWindow);
        w.WriteNumber("delivered_per_s", Round(r.DeliveredPerSecond));
        w.WriteNumber("sent_total", r.SentTotal);
        w.WriteNumber("accepted_total", r.AcceptedTotal);
        w.WriteNumber("expected_deliveries", r.ExpectedDeliveries);
        w.WriteNumber("received_total", r.ReceivedTotal);
        w.WriteNumber("lost", r.Lost);
        w.WriteNumber("unanswered_publishes", r.Unanswered);
        w.WriteNumber("backoffs", r.Backoffs);
        w.WriteNumber("errors", r.Errors);
        w.WriteNumber("unexpected_closes", r.UnexpectedCloses);
        WriteNullable(w, "first_error", r.FirstError);
        w.WriteStartObject("latency_us");
        w.WriteNumber("samples", r.LatencySamples);
        w.WriteNumber("p50", Round(r.P50Us));
        w.WriteNumber("p90", Round(r.P90Us));
        w.WriteNumber("p99", Round(r.P99Us));
        w.WriteNumber("p99_9", Round(r.P999Us));
        w.WriteNumber("p99_99", Round(r.P9999Us));
        w.WriteNumber("max", Round(r.MaxUs));
        w.WriteNumber("mean", Round(r.MeanUs));
        w.WriteEndObject();
        w.WriteNumber("server_cpu_s", Round(r.ServerCpuSeconds));
        w.WriteNumber("server_cpu_ns_per_delivery", Round(r.ServerCpuNsPerDelivery));
        w.WriteNumber("server_peak_rss_bytes", r.ServerPeakRssBytes);
        w.WriteNumber("server_context_switches_per_s", Round(r.ServerContextSwitchesPerSecond));
        w.WriteNumber("server_threads", r.ServerThreads);
        WriteThreads(w, "server_cpu_by_thread", r.ServerThreadCpu);
        WriteThreads(w, "client_cpu_by_thread", r.ClientThreadCpu);
        w.WriteNumber("messages_per_client_receive", Round(r.MessagesPerReceive));
        w.WriteNumber("load_average_1m", Round(r.LoadAverage));
        w.WriteNumber("client_cpu_s", Round(r.ClientCpuSeconds));
        w.WriteNumber("client_alloc_bytes_per_delivery", Round(r.ClientAllocatedBytesPerDelivery));
        if (r.ServerGc is not null || r.StatsCollections is not null || r.DiagnosticsError is not null)
        {
            WriteServerGc(w, r);
        }

        w.WriteEndObject();
    }

    /// <summary>--diagnostics: the server's GC over the window, from EventPipe and from $sys.stats.</summary>
    private static void WriteServerGc(Utf8JsonWriter w, PubSubResult r)
    {
        w.WriteStartObject("server_gc");
        WriteNullable(w, "error", r.DiagnosticsError);
        if (r.ServerGc is { } g)
        {
            w.WriteStartObject("eventpipe");
            w.WriteNumber("window_s", Round(g.WindowSeconds));
            w.WriteStartArray("collections_gen0_gen1_gen2");
            foreach (int n in g.Collections)
            {
                w.WriteNumberValue(n);
            }

            w.WriteEndArray();
            w.WriteNumber("collections_per_million_deliveries", Round(r.ServerGcsPerMillionDeliveries));
            w.WriteNumber("allocation_ticks", g.AllocationTicks);
            w.WriteNumber("allocated_bytes", g.AllocationTickBytes);
            w.WriteNumber("allocated_bytes_per_delivery", Round(r.ServerAllocBytesPerDelivery));
            if (double.IsFinite(g.CounterAllocatedBytes))
            {
                w.WriteNumber("alloc_rate_counter_bytes", Round(g.CounterAllocatedBytes));
                w.WriteNumber("alloc_rate_counter_covered_s", Round(g.CounterCoveredSeconds));
                w.WriteNumber("alloc_rate_counter_bytes_per_delivery", Round(r.ServerCounterAllocBytesPerDelivery));
            }

            w.WriteStartArray("allocation_by_type");
            foreach (var (type, ticks, bytes) in g.AllocationByType)
            {
                w.WriteStartObject();
                w.WriteString("type", type);
                w.WriteNumber("ticks", ticks);
                w.WriteNumber("bytes", bytes);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartObject("events_seen");
            foreach (var (name, count) in g.EventsSeen)
            {
                w.WriteNumber(name, count);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        if (r.StatsCollections is { } c)
        {
            w.WriteStartObject("sys_stats");
            w.WriteNumber("between_samples_s", Round(r.StatsSeconds));
            w.WriteNumber("delivered", r.StatsDelivered);
            w.WriteNumber("gc_allocated_bytes", r.StatsAllocatedBytes);
            w.WriteNumber("allocated_bytes_per_delivery", Round(r.StatsAllocBytesPerDelivery));
            w.WriteStartArray("collections_gen0_gen1_gen2");
            foreach (int n in c)
            {
                w.WriteNumberValue(n);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    private static void WriteConnections(Utf8JsonWriter w, ConnectionsResult r)
    {
        w.WriteStartObject();
        w.WriteString("target", r.Target);
        w.WriteString("server", r.Server);
        WriteNullable(w, "failure", r.Failure);
        w.WriteNumber("requested", r.Requested);
        w.WriteNumber("opened", r.Opened);
        w.WriteNumber("failed", r.Failed);
        WriteNullable(w, "first_error", r.FirstError);
        w.WriteNumber("open_s", Round(r.OpenSeconds));
        w.WriteNumber("warm_connections", r.WarmConnections);
        w.WriteNumber("rss_baseline_bytes", r.RssBaselineBytes);
        w.WriteNumber("rss_warm_bytes", r.RssWarmBytes);
        w.WriteNumber("rss_after_bytes", r.RssAfterBytes);
        w.WriteNumber("peak_rss_bytes", r.PeakRssBytes);
        w.WriteNumber("bytes_per_connection", Round(r.BytesPerConnection));
        w.WriteNumber("marginal_bytes_per_connection", Round(r.MarginalBytesPerConnection));
        w.WriteNumber("projected_rss_bytes_at_1m_connections_PROJECTION", Round(r.ProjectedBytesAt1M));
        w.WriteNumber("server_cpu_s", Round(r.ServerCpuSeconds));
        w.WriteNumber("load_average_1m", Round(r.LoadAverage));
        if (r.Heap is { } heap)
        {
            w.WriteStartObject("server_heap_marginal");
            w.WriteNumber("allocated_bytes_per_connect", Round(heap.AllocatedBytesPerConnect));
            w.WriteNumber("heap_bytes_per_connection_garbage_included", Round(heap.HeapBytesPerConnection));
            WriteNullableNumber(w, "after_gc_heap_bytes_per_connection", heap.LastGcHeapBytesPerConnection);
            WriteNullableNumber(w, "after_gc_fragmented_bytes_per_connection", heap.LastGcFragmentedBytesPerConnection);
            WriteNullableNumber(w, "gc_committed_bytes_per_connection", heap.CommittedBytesPerConnection);
            w.WriteNumber("gcs_while_opening", heap.GcsDuringOpen);
            w.WriteNumber("heap_after_bytes", heap.HeapAfterBytes);
            w.WriteNumber("after_gc_heap_after_bytes", heap.LastGcHeapAfterBytes);
            w.WriteNumber("after_gc_fragmented_after_bytes", heap.LastGcFragmentedAfterBytes);
            w.WriteNumber("gc_committed_after_bytes", heap.CommittedAfterBytes);
            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    private static void WriteNullableNumber(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, Round(v));
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static void WriteThreads(Utf8JsonWriter w, string name, List<(string Name, double CpuSeconds, int Threads)> groups)
    {
        w.WriteStartArray(name);
        foreach (var (thread, cpu, threads) in groups)
        {
            w.WriteStartObject();
            w.WriteString("name", thread);
            w.WriteNumber("threads", threads);
            w.WriteNumber("cpu_s", Round(cpu));
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    // JSON has no NaN: unmeasurable values become 0 (with the reason elsewhere in the run).
    private static double Round(double v) => double.IsFinite(v) ? Math.Round(v, 3) : 0;
}
