namespace FastRelay.LoadGen.Reports;

/// <summary>One pub/sub run: one target, one rate, one workload.</summary>
internal sealed class PubSubResult
{
    public required string Scenario { get; init; }
    public required string Target { get; init; }
    public required string Server { get; init; }
    /// <summary>Messages/s per publisher asked for; 0 = max (window-limited).</summary>
    public required int Rate { get; init; }
    public required int Topics { get; init; }
    public required int SubscribersPerTopic { get; init; }
    public required int Publishers { get; init; }
    public required int PayloadBytes { get; init; }
    public required int Window { get; init; }

    /// <summary>1-based repetition; 0 on a row folded from several runs.</summary>
    public int Repeat { get; set; } = 1;

    /// <summary>Successful runs behind this row (1 unless folded).</summary>
    public int Runs { get; set; } = 1;

    public string? Failure { get; set; }

    public double MeasuredSeconds { get; set; }
    public long SentInWindow { get; set; }
    public double SentPerSecond { get; set; }
    public long DeliveredInWindow { get; set; }
    public double DeliveredPerSecond { get; set; }

    public long SentTotal { get; set; }
    public long AcceptedTotal { get; set; }
    public long ExpectedDeliveries { get; set; }
    public long ReceivedTotal { get; set; }
    /// <summary>Expected deliveries minus received, after the drain.</summary>
    public long Lost { get; set; }
    /// <summary>Publishes never answered (no ACK/BACKOFF/reply) after the drain.</summary>
    public long Unanswered { get; set; }
    public long Backoffs { get; set; }
    public long Errors { get; set; }
    public long UnexpectedCloses { get; set; }
    public string? FirstError { get; set; }

    public long LatencySamples { get; set; }
    public double P50Us { get; set; }
    public double P90Us { get; set; }
    public double P99Us { get; set; }
    public double P999Us { get; set; }
    public double P9999Us { get; set; }
    public double MaxUs { get; set; }
    public double MeanUs { get; set; }

    public double ServerCpuSeconds { get; set; }
    public double ServerCpuNsPerDelivery { get; set; }
    public long ServerPeakRssBytes { get; set; }
    /// <summary>Context switches of the server's threads per second in the window (wake-ups, preemption).</summary>
    public double ServerContextSwitchesPerSecond { get; set; }
    public int ServerThreads { get; set; }
    /// <summary>Server CPU in the window by thread name (shards, thread-pool workers, socket engine, ...).</summary>
    public List<(string Name, double CpuSeconds, int Threads)> ServerThreadCpu { get; set; } = [];
    /// <summary>The load generator's CPU in the window by thread: shows whether a client thread was saturated.</summary>
    public List<(string Name, double CpuSeconds, int Threads)> ClientThreadCpu { get; set; } = [];
    public double ClientCpuSeconds { get; set; }
    public double ClientAllocatedBytesPerDelivery { get; set; }
    public double SetupSeconds { get; set; }
    /// <summary>1-minute load average at the end of the window (the box is shared: other tenants show here).</summary>
    public double LoadAverage { get; set; }
    /// <summary>Messages per subscriber receive call over the whole run (how much the server coalesces its writes).</summary>
    public double MessagesPerReceive { get; set; }

    /// <summary>--diagnostics: what the server's runtime reported over EventPipe in the window; null without it.</summary>
    public Measurement.ServerGcFigures? ServerGc { get; set; }
    /// <summary>EventPipe GCAllocationTick bytes in the window ÷ deliveries the load generator counted in it.</summary>
    public double ServerAllocBytesPerDelivery { get; set; } = double.NaN;
    /// <summary>The System.Runtime alloc-rate counter over the window ÷ deliveries; NaN when the runtime does not emit it.</summary>
    public double ServerCounterAllocBytesPerDelivery { get; set; } = double.NaN;
    /// <summary>EventPipe GCStart events (all generations) per million deliveries.</summary>
    public double ServerGcsPerMillionDeliveries { get; set; } = double.NaN;
    /// <summary>$sys.stats: Δgc_allocated_bytes ÷ Δdelivered between the first and last sample inside the window.</summary>
    public double StatsAllocBytesPerDelivery { get; set; } = double.NaN;
    public double StatsSeconds { get; set; }
    public long StatsDelivered { get; set; }
    public long StatsAllocatedBytes { get; set; }
    /// <summary>$sys.stats: collections per generation between the two samples; null when not measured.</summary>
    public int[]? StatsCollections { get; set; }
    /// <summary>Why a part of --diagnostics did not attach or answer.</summary>
    public string? DiagnosticsError { get; set; }

    public string RateLabel => Rate == 0 ? "max" : $"{Rate}/s";
}

/// <summary>One connections run: server memory per idle connection.</summary>
internal sealed class ConnectionsResult
{
    public required string Target { get; init; }
    public required string Server { get; init; }
    public required int Requested { get; init; }

    public string? Failure { get; set; }
    public int Opened { get; set; }
    public int Failed { get; set; }
    public string? FirstError { get; set; }
    public int WarmConnections { get; set; }
    public double OpenSeconds { get; set; }
    public long RssBaselineBytes { get; set; }
    public long RssWarmBytes { get; set; }
    public long RssAfterBytes { get; set; }
    public long PeakRssBytes { get; set; }
    /// <summary>(RSS after − baseline) / opened: includes one-time costs (pools, threads, code pages).</summary>
    public double BytesPerConnection { get; set; }
    /// <summary>(RSS after − RSS after the warm-up connections) / the connections opened after them.</summary>
    public double MarginalBytesPerConnection { get; set; }
    /// <summary>A linear projection, not a measurement: baseline + marginal × 1,000,000.</summary>
    public double ProjectedBytesAt1M { get; set; }
    public double ServerCpuSeconds { get; set; }
    public double LoadAverage { get; set; }

    /// <summary>The server's own view ($sys.stats) over the marginal connections; null for Redis or an older server.</summary>
    public ConnectionsHeap? Heap { get; set; }
}

/// <summary>
/// Managed-heap split of the marginal connections, from two <c>$sys.stats</c> samples (after the warm-up slice and
/// after all connections): what each connect allocated, what the heap grew by (garbage not yet collected included),
/// what the heap grew by between the last GCs before each sample (closest to live objects), and the GC's committed memory.
/// </summary>
internal sealed class ConnectionsHeap
{
    public double AllocatedBytesPerConnect { get; set; }
    public double HeapBytesPerConnection { get; set; }
    /// <summary>Null unless at least 3 GCs ran between the two samples (fewer leave the after-GC heaps at arbitrary points).</summary>
    public double? LastGcHeapBytesPerConnection { get; set; }
    public double? LastGcFragmentedBytesPerConnection { get; set; }
    public double? CommittedBytesPerConnection { get; set; }
    public long GcsDuringOpen { get; set; }
    public long HeapAfterBytes { get; set; }
    public long LastGcHeapAfterBytes { get; set; }
    public long LastGcFragmentedAfterBytes { get; set; }
    public long CommittedAfterBytes { get; set; }
}
