using System.Diagnostics;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Reports;
using FastRelay.LoadGen.Targets;
using FastRelay.LoadGen.Wire;
using HdrHistogram;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>
/// One pub/sub run against one freshly started target: connect and subscribe everyone, publish for
/// warm-up + duration, measure inside the window, drain, count what was lost, tear down.
/// </summary>
internal static class PubSubRun
{
    private const ulong SubscribeRequestId = 2;
    private static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(120);

    private readonly record struct Snapshot(long Ticks, long Delivered, long Sent, double ServerCpu, double ClientCpu, long ServerSwitches);

    public static async Task<PubSubResult> RunAsync(TargetKind kind, LoadGenOptions options, Workload workload, int rate)
    {
        string label = $"{options.ScenarioName} {kind.Name()} rate={(rate == 0 ? "max" : rate + "/s")}";
        string logPath = Path.Combine(options.OutDir, "logs", $"{options.ScenarioName}-{kind.Name()}-r{rate}.log");
        Progress.Line($"[{label}] starting {kind.Name()} (log: {logPath})");
        await using var target = await TargetProcess.StartAsync(kind, options, logPath).ConfigureAwait(false);
        await using var diagnostics = options.Diagnostics && kind.IsFastRelay()
            ? await ServerDiagnostics.StartAsync(target, options.GcProbePath, label).ConfigureAwait(false)
            : null;
        var result = new PubSubResult
        {
            Scenario = options.ScenarioName,
            Target = kind.Name(),
            Server = target.Description,
            Rate = rate,
            Topics = workload.Topics,
            SubscribersPerTopic = workload.SubscribersPerTopic,
            Publishers = workload.Publishers,
            PayloadBytes = options.PayloadBytes,
            Window = options.Window,
        };

        var wire = WireProtocol.For(target);
        var connector = new Connector(target, wire, options.SourceIps, options.ReceiveBufferBytes);
        var run = new RunState();
        var subscribers = new Subscriber?[workload.SubscriberCount];
        var publishers = new Publisher?[workload.Publishers];
        try
        {
            long setupStart = Stopwatch.GetTimestamp();
            using (var setup = new CancellationTokenSource(SetupTimeout))
            {
                await Connector.ForEachAsync(0, subscribers.Length, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    var connection = await connector.OpenAsync(i, ct).ConfigureAwait(false);
                    var subscriber = new Subscriber(connection, run);
                    subscribers[i] = subscriber;
                    byte[] frame = new byte[512];
                    int n = wire.WriteSubscribe(frame, workload.TopicOfSubscriber(i), SubscribeRequestId);
                    await connection.SendAsync(frame.AsMemory(0, n), ct).ConfigureAwait(false);
                    var reply = await connection.ReadInboundAsync(ct).ConfigureAwait(false);
                    if (!wire.IsSubscribed(in reply, SubscribeRequestId))
                    {
                        throw new WireException($"subscribe refused: {reply.Kind} {reply.ErrorCode} {reply.Text}");
                    }

                    subscriber.Start();
                }).ConfigureAwait(false);

                await Connector.ForEachAsync(0, publishers.Length, options.ConnectParallelism, setup.Token, async (i, ct) =>
                {
                    var connection = await connector.OpenAsync(subscribers.Length + i, ct).ConfigureAwait(false);
                    var publisher = new Publisher(connection, run, workload.TopicsOfPublisher(i), options.PayloadBytes);
                    publishers[i] = publisher;
                    publisher.Start();
                }).ConfigureAwait(false);
            }

            result.SetupSeconds = Stopwatch.GetElapsedTime(setupStart).TotalSeconds;
            Progress.Line($"[{label}] {subscribers.Length} subscribers on {workload.Topics} topic(s) and {publishers.Length} publisher(s) ready in {result.SetupSeconds:0.0} s");
            await MeasureAsync(label, options, workload, rate, target, run, publishers!, diagnostics, result).ConfigureAwait(false);
            long receives = subscribers.Sum(s => s!.Receives);
            result.MessagesPerReceive = receives > 0 ? run.Delivered / (double)receives : 0;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            result.Failure = ex.Message;
            Progress.Line($"[{label}] FAILED: {ex.Message}");
        }
        finally
        {
            run.Stopping = true;
            var loops = new List<Task>();
            foreach (var s in subscribers)
            {
                s?.Connection.Dispose();
                if (s?.ReceiveLoop is { } loop)
                {
                    loops.Add(loop);
                }
            }

            foreach (var p in publishers)
            {
                p?.Connection.Dispose();
                if (p?.ReceiveLoop is { } loop)
                {
                    loops.Add(loop);
                }
            }

            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }

        return result;
    }

    private static async Task MeasureAsync(string label, LoadGenOptions options, Workload workload, int rate, TargetProcess target, RunState run, Publisher[] publishers, ServerDiagnostics? diagnostics, PubSubResult result)
    {
        var driver = new PublisherDriver(publishers, run, rate, options.Window, workload.SubscribersPerTopic, options.MaxMessages);
        long frequency = Stopwatch.Frequency;
        Snapshot Take() => new(Stopwatch.GetTimestamp(), run.Delivered, driver.Sent, target.CpuSeconds(), Environment.CpuUsage.TotalTime.TotalSeconds, target.ContextSwitches());

        var begin = Take();
        Dictionary<int, (string Name, double CpuSeconds)>? threadsFrom = null;
        Dictionary<int, (string Name, double CpuSeconds)>? clientThreadsFrom = null;
        long allocatedFrom = 0;
        long allocatedTo = 0;
        driver.Start(TimeSpan.FromSeconds(options.WarmupSeconds + options.DurationSeconds));
        long warmupEnd = begin.Ticks + (long)(options.WarmupSeconds * frequency);
        long measureEnd = warmupEnd + (long)(options.DurationSeconds * frequency);
        long nextProgress = begin.Ticks + frequency;
        Snapshot? from = null;
        Snapshot to;
        var previous = begin;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            bool driverDone = driver.Join(TimeSpan.Zero); // ended early: message cap or a failed send
            if (from is null && (now >= warmupEnd || driverDone))
            {
                from = driverDone && now < warmupEnd ? begin : Take();
                diagnostics?.Begin(from.Value.Ticks);
                threadsFrom = target.ThreadCpu();
                clientThreadsFrom = ProcessStats.ThreadCpu(Environment.ProcessId);
                allocatedFrom = GC.GetTotalAllocatedBytes(precise: true); // after the /proc reads, which allocate
                run.Recording = true;
            }

            if (from is not null && (now >= measureEnd || driverDone))
            {
                run.Recording = false;
                allocatedTo = GC.GetTotalAllocatedBytes(precise: true); // before the /proc reads
                to = Take();
                diagnostics?.End(to.Ticks);
                result.ServerThreadCpu = ProcessStats.ThreadCpuDelta(threadsFrom ?? [], target.ThreadCpu());
                result.ClientThreadCpu = ProcessStats.ThreadCpuDelta(clientThreadsFrom ?? [], ProcessStats.ThreadCpu(Environment.ProcessId));
                result.LoadAverage = MachineInfo.LoadAverage();
                break;
            }

            if (now >= nextProgress)
            {
                // Progress reads only counters: /proc reads allocate, and allocation inside the window is reported.
                var current = new Snapshot(Stopwatch.GetTimestamp(), run.Delivered, driver.Sent, 0, 0, 0);
                double interval = (current.Ticks - previous.Ticks) / (double)frequency;
                Progress.Tick(label, current.Ticks - begin.Ticks, current.Sent, current.Delivered,
                    (current.Sent - previous.Sent) / interval, (current.Delivered - previous.Delivered) / interval,
                    from is not null, run.FirstError);
                previous = current;
                nextProgress += frequency;
            }

            long next = Math.Min(nextProgress, from is null ? warmupEnd : measureEnd);
            int sleepMs = (int)Math.Clamp((next - Stopwatch.GetTimestamp()) * 1000 / frequency, 1, 100);
            await Task.Delay(sleepMs).ConfigureAwait(false);
        }

        driver.Stop();
        driver.Join(TimeSpan.FromSeconds(10));
        if (driver.Failure is not null)
        {
            result.FirstError ??= $"publisher failed: {driver.Failure.Message}";
        }

        // Drain: wait for every publish to be answered and every expected delivery to arrive (bounded).
        long Expected() => ExpectedDeliveries(publishers, workload);
        long drainEnd = Stopwatch.GetTimestamp() + (long)(options.DrainSeconds * frequency);
        while (Stopwatch.GetTimestamp() < drainEnd)
        {
            if (publishers.Sum(p => p.Replies) >= driver.Sent && run.Delivered >= Expected())
            {
                break;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        double seconds = (to.Ticks - from.Value.Ticks) / (double)frequency;
        long delivered = to.Delivered - from.Value.Delivered;
        result.MeasuredSeconds = seconds;
        result.SentInWindow = to.Sent - from.Value.Sent;
        result.SentPerSecond = result.SentInWindow / seconds;
        result.DeliveredInWindow = delivered;
        result.DeliveredPerSecond = delivered / seconds;
        result.SentTotal = driver.Sent;
        result.AcceptedTotal = publishers.Sum(p => p.Accepted);
        result.ExpectedDeliveries = Expected();
        result.ReceivedTotal = run.Delivered;
        result.Lost = result.ExpectedDeliveries - result.ReceivedTotal;
        result.Unanswered = driver.Sent - publishers.Sum(p => p.Replies);
        result.Backoffs = publishers.Sum(p => p.Backoffs);
        result.Errors = run.Errors;
        result.UnexpectedCloses = run.UnexpectedCloses;
        result.FirstError ??= run.FirstError;
        result.ServerCpuSeconds = to.ServerCpu - from.Value.ServerCpu;
        result.ServerCpuNsPerDelivery = delivered > 0 ? result.ServerCpuSeconds * 1e9 / delivered : double.NaN;
        result.ServerPeakRssBytes = target.PeakRssBytes();
        result.ServerContextSwitchesPerSecond = (to.ServerSwitches - from.Value.ServerSwitches) / seconds;
        result.ServerThreads = target.Threads();
        result.ClientCpuSeconds = to.ClientCpu - from.Value.ClientCpu;
        result.ClientAllocatedBytesPerDelivery = delivered > 0 ? (allocatedTo - allocatedFrom) / (double)delivered : double.NaN;

        if (diagnostics is not null)
        {
            await diagnostics.CompleteAsync(result, delivered).ConfigureAwait(false);
        }

        var histogram = run.Latency.Merge();
        result.LatencySamples = histogram.TotalCount;
        if (histogram.TotalCount > 0)
        {
            result.P50Us = histogram.GetValueAtPercentile(50) / 1000.0;
            result.P90Us = histogram.GetValueAtPercentile(90) / 1000.0;
            result.P99Us = histogram.GetValueAtPercentile(99) / 1000.0;
            result.P999Us = histogram.GetValueAtPercentile(99.9) / 1000.0;
            result.P9999Us = histogram.GetValueAtPercentile(99.99) / 1000.0;
            result.MaxUs = histogram.GetMaxValue() / 1000.0;
            result.MeanUs = histogram.GetMean() / 1000.0;
        }

        Progress.Line(
            $"[{label}] done: {result.DeliveredPerSecond:N0} delivered/s, p50 {result.P50Us:N0} µs, p99 {result.P99Us:N0} µs, " +
            $"p99.9 {result.P999Us:N0} µs, lost {result.Lost:N0}, server CPU {result.ServerCpuSeconds:0.00} s" +
            (result.ServerGc is { } gc ? $", server GCs {gc.Collections[0]}/{gc.Collections[1]}/{gc.Collections[2]}, server alloc {result.ServerAllocBytesPerDelivery:0.###} B/delivery (EventPipe), {result.StatsAllocBytesPerDelivery:0.###} B/delivery ($sys.stats)" : "") +
            (result.FirstError is null ? "" : $"; first error: {result.FirstError}"));
    }

    /// <summary>Deliveries the server owes: RESP reports receivers per PUBLISH; FastRelay ACKs × subscribers per topic.</summary>
    private static long ExpectedDeliveries(Publisher[] publishers, Workload workload)
    {
        long expected = 0;
        foreach (var p in publishers)
        {
            expected += p.Connection.Wire.PublishReplyCountsReceivers ? p.Receivers : p.Accepted * workload.SubscribersPerTopic;
        }

        return expected;
    }
}
