using System.Diagnostics;
using System.Text;
using FastRelay.Core.Tenancy;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Targets;
using FastRelay.LoadGen.Wire;
using FastRelay.Protocol;
using HdrHistogram;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>Which half of a flow-control comparison a run is.</summary>
internal enum FlowVariant
{
    /// <summary>The measured population alone: no flood, no slow subscribers.</summary>
    Baseline,
    /// <summary>noisy-tenant: tenant acme floods. slow-consumer: K subscribers never read.</summary>
    Stressed,
}

/// <summary>One run of noisy-tenant or slow-consumer.</summary>
internal sealed class FlowResult
{
    public required string Target { get; init; }
    public required FlowVariant Variant { get; init; }
    public int Repeat { get; set; }
    public string? Failure { get; set; }
    public double MeasuredSeconds { get; set; }

    // The measured population: tenant globex (noisy-tenant) or the fast subscribers (slow-consumer).
    public int Subscribers { get; set; }
    public double SentPerSecond { get; set; }
    public double DeliveredPerSecond { get; set; }
    public long LatencySamples { get; set; }
    public double P50Us { get; set; }
    public double P99Us { get; set; }
    public double P999Us { get; set; }
    public double MaxUs { get; set; }
    public long Expected { get; set; }
    public long Received { get; set; }
    public long Lost => Expected - Received;
    public long Backoffs { get; set; }
    public long Unanswered { get; set; }
    public long UnexpectedCloses { get; set; }
    public long Errors { get; set; }
    public string? FirstError { get; set; }

    // noisy-tenant: the flooding tenant acme.
    public double FloodSentPerSecond { get; set; }
    public double FloodAcceptedPerSecond { get; set; }
    public double FloodDeliveredPerSecond { get; set; }
    public long FloodSent { get; set; }
    public long FloodBackoffs { get; set; }
    public long FloodUnexpectedCloses { get; set; }

    // slow-consumer.
    public int Slow { get; set; }
    public int SlowClosed { get; set; }
    public int SlowOpen { get; set; }
    public long SlowBytesAfterRun { get; set; }
    public int SocketsAtStart { get; set; }
    public DateTime PublishStartedAt { get; set; }

    /// <summary>Slow subscribers' sockets the server still had open after publishing stopped (and the drain).</summary>
    public int SlowSocketsHeldByServer { get; set; }

    /// <summary>FastRelay's slow_consumers counter over time, from its stats log lines.</summary>
    public List<(double Seconds, long SlowConsumers)> SlowConsumerCounts { get; } = [];

    /// <summary>Seconds after publishing started at which the server's socket count fell by one (one entry per socket).</summary>
    public List<double> ServerSocketCloses { get; } = [];
    public double ServerCpuSeconds { get; set; }
    public long ServerPeakRssBytes { get; set; }
    public double LoadAverage { get; set; }
}

/// <summary>
/// The two flow-control scenarios. Each target is run twice, a baseline and a stressed run, with the same
/// measured population:
/// <list type="bullet">
/// <item>noisy-tenant: tenant globex (P publishers at a fixed rate, S subscribers on one topic) with and
/// without tenant acme flooding (F publishers, each its own topic, max rate through a deep window).</item>
/// <item>slow-consumer: S fast subscribers of one topic fed at a fixed rate with a droppable/partial/critical
/// mix, with and without K more subscribers that never read after their SUB is acknowledged.</item>
/// </list>
/// </summary>
internal static class FlowControlRun
{
    private const ulong SubscribeRequestId = 2;
    private static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(120);
    public const string QuietTenant = "globex";
    public const string NoisyTenant = "acme";
    private const string QuietSecret = "loadgen-globex-secret-0123456789abcdef";
    private const string NoisySecret = "loadgen-acme-secret-0123456789abcdef0123";

    public static async Task<List<FlowResult>> RunAllAsync(LoadGenOptions options)
    {
        string? config = null;
        if (options.Scenario == Scenario.NoisyTenant)
        {
            config = Path.Combine(options.OutDir, "noisy-tenant.config.json");
            Directory.CreateDirectory(options.OutDir);
            File.WriteAllText(config, $$"""
                {
                  "Tenancy": {
                    "Tenants": [
                      { "Name": "{{NoisyTenant}}", "Secrets": ["{{NoisySecret}}"] },
                      { "Name": "{{QuietTenant}}", "Secrets": ["{{QuietSecret}}"] }
                    ]
                  }
                }
                """);
            Progress.Line($"tenant config: {config}");
        }

        var results = new List<FlowResult>();
        for (int repeat = 1; repeat <= options.Repeats; repeat++)
        {
            foreach (var target in options.Targets)
            {
                foreach (var variant in new[] { FlowVariant.Baseline, FlowVariant.Stressed })
                {
                    var result = await RunAsync(target, options, variant, config).ConfigureAwait(false);
                    result.Repeat = repeat;
                    results.Add(result);
                }
            }
        }

        return results;
    }

    private static async Task<FlowResult> RunAsync(TargetKind kind, LoadGenOptions options, FlowVariant variant, string? config)
    {
        bool noisy = options.Scenario == Scenario.NoisyTenant;
        bool stressed = variant == FlowVariant.Stressed;
        string variantName = noisy ? (stressed ? "flood" : "baseline") : (stressed ? "slow" : "baseline");
        string label = $"{options.ScenarioName} {kind.Name()} {variantName}";
        string logPath = Path.Combine(options.OutDir, "logs", $"{options.ScenarioName}-{kind.Name()}-{variantName}.log");
        Progress.Line($"[{label}] starting {kind.Name()} (log: {logPath})");
        // slow-consumer: node stats every second, so the log dates the server's slow-consumer closes.
        string[]? serverArgs = config is not null ? ["--config", config] : noisy ? null : ["--Relay:StatsInterval", "00:00:01"];
        await using var target = await TargetProcess.StartAsync(kind, options, logPath, serverArgs).ConfigureAwait(false);
        var result = new FlowResult { Target = kind.Name(), Variant = variant, Subscribers = options.Subscribers };

        // Client index layout (the token's subject is loadgen-{index}): measured subscribers, measured publishers,
        // then the noisy tenant's subscribers and publishers, or the slow subscribers.
        int s = options.Subscribers;
        int p = options.Publishers;
        int floodTopics = noisy ? options.FloodPublishers : 0;
        int floodSubs = noisy ? floodTopics * options.FloodSubscribers : 0;
        int slow = !noisy && stressed ? options.SlowSubscribers : 0;
        result.Slow = slow;
        int quietEnd = s + p;

        var wire = WireProtocol.For(target);
        if (noisy && wire is FastRelayWire fastRelay)
        {
            var now = DateTimeOffset.UtcNow;
            fastRelay.TokenFor = i => TokenIssuer.Mint(
                i < quietEnd ? QuietTenant : NoisyTenant,
                i < quietEnd ? QuietSecret : NoisySecret,
                new TenantTokenClaims
                {
                    ClientId = $"loadgen-{i}",
                    Publish = [">"],
                    Subscribe = [">"],
                    IssuedAt = now.AddMinutes(-1),
                    ExpiresAt = now.AddHours(1),
                });
        }

        var connector = new Connector(target, wire, options.SourceIps, options.ReceiveBufferBytes);
        var measured = new RunState();
        var flood = new RunState();
        ReadOnlyMemory<byte> topic = Encoding.UTF8.GetBytes(noisy ? $"loadgen.noisy.{QuietTenant}" : "loadgen.slow.t0");
        var floodTopicNames = Enumerable.Range(0, floodTopics).Select(t => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes($"loadgen.noisy.{NoisyTenant}.t{t}")).ToArray();
        var subscribers = new Subscriber?[s];
        var publishers = new Publisher?[p];
        var floodSubscribers = new Subscriber?[floodSubs];
        var floodPublishers = new Publisher?[floodTopics];
        var slowConnections = new ClientConnection?[slow];
        var flags = noisy ? null : FlagPattern(options.DroppablePercent, options.PartialPercent);
        try
        {
            long setupStart = Stopwatch.GetTimestamp();
            using (var setup = new CancellationTokenSource(SetupTimeout))
            {
                async Task<ClientConnection> OpenSubscribedAsync(int index, ReadOnlyMemory<byte> name, int rcvbuf, CancellationToken ct)
                {
                    var connection = await connector.OpenAsync(index, ct, rcvbuf).ConfigureAwait(false);
                    byte[] frame = new byte[512];
                    int n = wire.WriteSubscribe(frame, name, SubscribeRequestId);
                    await connection.SendAsync(frame.AsMemory(0, n), ct).ConfigureAwait(false);
                    var reply = await connection.ReadInboundAsync(ct).ConfigureAwait(false);
                    if (!wire.IsSubscribed(in reply, SubscribeRequestId))
                    {
                        connection.Dispose();
                        throw new WireException($"subscribe refused: {reply.Kind} {reply.ErrorCode} {reply.Text}");
                    }

                    return connection;
                }

                await Connector.ForEachAsync(0, s, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    var subscriber = new Subscriber(await OpenSubscribedAsync(i, topic, 0, ct).ConfigureAwait(false), measured);
                    subscribers[i] = subscriber;
                    subscriber.Start();
                }).ConfigureAwait(false);

                await Connector.ForEachAsync(0, p, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    var publisher = new Publisher(await connector.OpenAsync(s + i, ct).ConfigureAwait(false), measured, [topic], options.PayloadBytes, flags);
                    publishers[i] = publisher;
                    publisher.Start();
                }).ConfigureAwait(false);

                // The noisy tenant's connections exist in the baseline too (same connection count); only its
                // publishers stay silent there.
                await Connector.ForEachAsync(0, floodSubs, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    var connection = await OpenSubscribedAsync(quietEnd + i, floodTopicNames[i % floodTopics], 0, ct).ConfigureAwait(false);
                    var subscriber = new Subscriber(connection, flood, recordLatency: false);
                    floodSubscribers[i] = subscriber;
                    subscriber.Start();
                }).ConfigureAwait(false);

                await Connector.ForEachAsync(0, floodTopics, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    var publisher = new Publisher(await connector.OpenAsync(quietEnd + floodSubs + i, ct).ConfigureAwait(false), flood, [floodTopicNames[i]], options.PayloadBytes);
                    floodPublishers[i] = publisher;
                    publisher.Start();
                }).ConfigureAwait(false);

                // Slow subscribers: a small kernel receive buffer, SUB acknowledged, then never read again.
                await Connector.ForEachAsync(0, slow, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    slowConnections[i] = await OpenSubscribedAsync(quietEnd + i, topic, options.SlowReceiveBufferBytes, ct).ConfigureAwait(false);
                }).ConfigureAwait(false);
            }

            Progress.Line($"[{label}] {s} subscribers + {p} publisher(s) measured" +
                (noisy ? $", {NoisyTenant}: {floodSubs} subscribers + {floodTopics} publishers ({(stressed ? "flooding" : "silent")})" : $", {slow} slow subscribers") +
                $", ready in {Stopwatch.GetElapsedTime(setupStart).TotalSeconds:0.0} s");
            await MeasureAsync(label, options, target, noisy && stressed, measured, flood, publishers!, floodPublishers!, result).ConfigureAwait(false);
            if (slow > 0)
            {
                // Slow subscribers whose socket the server still holds (the measured ones are all open).
                result.SlowSocketsHeldByServer = ProcessStats.SocketCount(target.Pid) - (result.SocketsAtStart - slow);
                await ReadSlowAsync(slowConnections!, result).ConfigureAwait(false);
                if (kind.IsFastRelay())
                {
                    result.SlowConsumerCounts.AddRange(StatsTimeline(logPath, result.PublishStartedAt));
                }
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            result.Failure = ex.Message;
            Progress.Line($"[{label}] FAILED: {ex.Message}");
        }
        finally
        {
            measured.Stopping = true;
            flood.Stopping = true;
            var loops = new List<Task>();
            foreach (var c in subscribers.Select(x => (x?.Connection, x?.ReceiveLoop))
                         .Concat(publishers.Select(x => (x?.Connection, x?.ReceiveLoop)))
                         .Concat(floodSubscribers.Select(x => (x?.Connection, x?.ReceiveLoop)))
                         .Concat(floodPublishers.Select(x => (x?.Connection, x?.ReceiveLoop))))
            {
                c.Connection?.Dispose();
                if (c.ReceiveLoop is { } loop)
                {
                    loops.Add(loop);
                }
            }

            foreach (var c in slowConnections)
            {
                c?.Dispose();
            }

            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>(seconds after publishing began, slow_consumers) from the server's once-a-second stats log lines.</summary>
    private static IEnumerable<(double Seconds, long SlowConsumers)> StatsTimeline(string logPath, DateTime started)
    {
        var list = new List<(double, long)>();
        try
        {
            foreach (string line in File.ReadLines(logPath))
            {
                int at = line.IndexOf("slow_consumers=", StringComparison.Ordinal);
                if (at < 0 || line.Length < 12 || !TimeSpan.TryParseExact(line[..12], @"hh\:mm\:ss\.fff", System.Globalization.CultureInfo.InvariantCulture, out var time))
                {
                    continue;
                }

                string digits = new(line[(at + "slow_consumers=".Length)..].TakeWhile(char.IsAsciiDigit).ToArray());
                double seconds = (started.Date + time - started).TotalSeconds;
                list.Add((seconds, long.Parse(digits, System.Globalization.CultureInfo.InvariantCulture)));
            }
        }
        catch (IOException)
        {
            // the log is gone: no timeline
        }

        return list;
    }

    /// <summary>100 flags, shuffled with a fixed seed: the given shares droppable and partial, the rest critical.</summary>
    public static EventFlags[] FlagPattern(int droppablePercent, int partialPercent)
    {
        var pattern = new EventFlags[100];
        for (int i = 0; i < 100; i++)
        {
            pattern[i] = i < droppablePercent ? EventFlags.Droppable : i < droppablePercent + partialPercent ? EventFlags.Partial : EventFlags.None;
        }

        new Random(42).Shuffle(pattern);
        return pattern;
    }

    private static async Task MeasureAsync(string label, LoadGenOptions options, TargetProcess target, bool flooding, RunState measured, RunState flood,
        Publisher[] publishers, Publisher[] floodPublishers, FlowResult result)
    {
        var driver = new PublisherDriver(publishers, measured, options.Rates[0], options.Window, options.Subscribers, options.MaxMessages);
        PublisherDriver? floodDriver = flooding
            ? new PublisherDriver(floodPublishers, flood, options.FloodRate, options.FloodWindow, options.FloodSubscribers, options.MaxMessages)
            : null;
        long frequency = Stopwatch.Frequency;
        var total = TimeSpan.FromSeconds(options.WarmupSeconds + options.DurationSeconds);

        // The server's open sockets, polled every 100 ms: nothing else disconnects during a run, so every drop
        // is a subscriber the server closed (slow consumer, output-buffer limit).
        using var monitorStop = new CancellationTokenSource();
        long started = Stopwatch.GetTimestamp();
        int socketsAtStart = ProcessStats.SocketCount(target.Pid);
        result.SocketsAtStart = socketsAtStart;
        result.PublishStartedAt = DateTime.Now;
        var monitor = Task.Run(async () =>
        {
            int last = socketsAtStart;
            while (!monitorStop.IsCancellationRequested)
            {
                int now = ProcessStats.SocketCount(target.Pid);
                double t = Stopwatch.GetElapsedTime(started).TotalSeconds;
                for (; last > now; last--)
                {
                    lock (result.ServerSocketCloses)
                    {
                        result.ServerSocketCloses.Add(t);
                    }
                }

                last = Math.Max(last, now);
                try
                {
                    await Task.Delay(100, monitorStop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        });

        driver.Start(total);
        floodDriver?.Start(total);
        long warmupEnd = started + (long)(options.WarmupSeconds * frequency);
        long measureEnd = warmupEnd + (long)(options.DurationSeconds * frequency);
        long nextProgress = started + frequency;
        bool measuring = false;
        long fromTicks = 0, fromDelivered = 0, fromFloodDelivered = 0, fromSent = 0, fromFloodSent = 0, fromFloodAccepted = 0;
        double fromCpu = 0;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (!measuring && now >= warmupEnd)
            {
                fromCpu = target.CpuSeconds();
                fromTicks = Stopwatch.GetTimestamp();
                fromDelivered = measured.Delivered;
                fromFloodDelivered = flood.Delivered;
                fromSent = driver.Sent;
                fromFloodSent = floodDriver?.Sent ?? 0;
                fromFloodAccepted = floodPublishers.Sum(x => x.Accepted);
                measured.Recording = true;
                measuring = true;
            }

            if (measuring && now >= measureEnd)
            {
                measured.Recording = false;
                long toTicks = Stopwatch.GetTimestamp();
                double seconds = (toTicks - fromTicks) / (double)frequency;
                result.MeasuredSeconds = seconds;
                result.DeliveredPerSecond = (measured.Delivered - fromDelivered) / seconds;
                result.SentPerSecond = (driver.Sent - fromSent) / seconds;
                result.FloodDeliveredPerSecond = (flood.Delivered - fromFloodDelivered) / seconds;
                result.FloodSentPerSecond = ((floodDriver?.Sent ?? 0) - fromFloodSent) / seconds;
                result.FloodAcceptedPerSecond = (floodPublishers.Sum(x => x.Accepted) - fromFloodAccepted) / seconds;
                result.ServerCpuSeconds = target.CpuSeconds() - fromCpu;
                result.LoadAverage = MachineInfo.LoadAverage();
                break;
            }

            if (now >= nextProgress)
            {
                Progress.Line($"[{label}] t={Stopwatch.GetElapsedTime(started).TotalSeconds,4:0}s {(measuring ? "measure" : "warm-up")}  sent {driver.Sent:N0}  delivered {measured.Delivered:N0}" +
                    (flooding ? $"  | flood sent {floodDriver!.Sent:N0} delivered {flood.Delivered:N0} backoffs {floodPublishers.Sum(x => x.Backoffs):N0}" : "") +
                    (result.ServerSocketCloses.Count > 0 ? $"  | server closed {result.ServerSocketCloses.Count} socket(s)" : "") +
                    (measured.FirstError is { } e ? $"  ! {e}" : ""));
                nextProgress += frequency;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        driver.Stop();
        floodDriver?.Stop();
        driver.Join(TimeSpan.FromSeconds(10));
        floodDriver?.Join(TimeSpan.FromSeconds(10));
        if ((driver.Failure ?? floodDriver?.Failure) is { } failure)
        {
            result.FirstError = $"publisher failed: {failure.Message}";
        }

        // Drain: every measured publish answered and every delivery owed to the measured subscribers arrived (bounded).
        long Expected() => publishers[0].Connection.Wire.PublishReplyCountsReceivers
            ? Math.Min(publishers.Sum(x => x.Receivers), publishers.Sum(x => x.Accepted) * options.Subscribers)
            : publishers.Sum(x => x.Accepted) * options.Subscribers;
        long drainEnd = Stopwatch.GetTimestamp() + (long)(options.DrainSeconds * frequency);
        while (Stopwatch.GetTimestamp() < drainEnd)
        {
            if (publishers.Sum(x => x.Replies) >= driver.Sent && measured.Delivered >= Expected())
            {
                break;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        // Keep watching the server's sockets a little longer: a close decided at the end of the run shows up
        // after the server's close timeout.
        await Task.Delay(TimeSpan.FromSeconds(options.Scenario == Scenario.SlowConsumer ? 2.5 : 0)).ConfigureAwait(false);
        monitorStop.Cancel();
        await monitor.ConfigureAwait(false);

        result.Expected = Expected();
        result.Received = measured.Delivered;
        result.Backoffs = publishers.Sum(x => x.Backoffs);
        result.Unanswered = driver.Sent - publishers.Sum(x => x.Replies);
        result.UnexpectedCloses = measured.UnexpectedCloses;
        result.Errors = measured.Errors;
        result.FirstError ??= measured.FirstError;
        result.FloodSent = floodDriver?.Sent ?? 0;
        result.FloodBackoffs = floodPublishers.Sum(x => x.Backoffs);
        result.FloodUnexpectedCloses = flood.UnexpectedCloses;
        result.ServerPeakRssBytes = target.PeakRssBytes();
        var histogram = measured.Latency.Merge();
        result.LatencySamples = histogram.TotalCount;
        if (histogram.TotalCount > 0)
        {
            result.P50Us = histogram.GetValueAtPercentile(50) / 1000.0;
            result.P99Us = histogram.GetValueAtPercentile(99) / 1000.0;
            result.P999Us = histogram.GetValueAtPercentile(99.9) / 1000.0;
            result.MaxUs = histogram.GetMaxValue() / 1000.0;
        }

        Progress.Line($"[{label}] done: {result.DeliveredPerSecond:N0} delivered/s, p50 {result.P50Us:N0} µs, p99 {result.P99Us:N0} µs, p99.9 {result.P999Us:N0} µs, max {result.MaxUs:N0} µs, lost {result.Lost:N0}" +
            (flooding ? $"; flood {result.FloodSentPerSecond:N0} sent/s, {result.FloodDeliveredPerSecond:N0} delivered/s, {result.FloodBackoffs:N0} backoffs" : "") +
            $"; server sockets closed at [{string.Join(", ", result.ServerSocketCloses.Select(t => t.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)))}] s" +
            (result.FirstError is null ? "" : $"; first error: {result.FirstError}"));
    }

    /// <summary>
    /// After the run, the slow subscribers finally read: a socket that ends (EOF or reset) was closed by the
    /// server; one that only goes quiet (no bytes for 1 s) is still open. Bounded at 15 s for all.
    /// </summary>
    private static async Task ReadSlowAsync(ClientConnection[] connections, FlowResult result)
    {
        using var overall = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        long bytes = 0;
        var outcomes = await Task.WhenAll(connections.Select(async connection =>
        {
            byte[] buffer = new byte[256 * 1024];
            while (true)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(overall.Token);
                idle.CancelAfter(TimeSpan.FromSeconds(1));
                try
                {
                    int n = await connection.Socket.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, idle.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return true;
                    }

                    Interlocked.Add(ref bytes, n);
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
                catch (System.Net.Sockets.SocketException)
                {
                    return true;
                }
            }
        })).ConfigureAwait(false);
        result.SlowClosed = outcomes.Count(closed => closed);
        result.SlowOpen = outcomes.Length - result.SlowClosed;
        result.SlowBytesAfterRun = bytes;
    }
}
