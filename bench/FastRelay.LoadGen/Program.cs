using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Reports;
using FastRelay.LoadGen.Scenarios;
using FastRelay.LoadGen.Targets;

namespace FastRelay.LoadGen;

/// <summary>Entry point: parse, run every target (and rate) back to back, report.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        ClientRuntimeTuning.Apply();
        if (args is ["selftest"])
        {
            return SelfTest.Run();
        }

        LoadGenOptions options;
        try
        {
            options = LoadGenOptions.Parse(args);
        }
        catch (UsageException ex)
        {
            if (ex.Message.Length > 0)
            {
                Console.Error.WriteLine($"fastrelay-loadgen: {ex.Message}\n");
            }

            Console.Error.WriteLine(LoadGenOptions.Usage);
            return ex.Message.Length > 0 ? 2 : 0;
        }

        ulong openFiles = Posix.RaiseOpenFilesLimit();
        try
        {
            // Fail fast with the install hint before anything starts.
            if (options.Targets.Contains(TargetKind.Redis))
            {
                TargetProcess.ResolveRedis(options.RedisServerPath);
            }

            if (options.Targets.Any(t => t.IsFastRelay()))
            {
                TargetProcess.ResolveFastRelay(options.ServerPath);
            }
        }
        catch (InvalidOperationException ex)
        {
            Console.Error.WriteLine($"fastrelay-loadgen: {ex.Message}");
            return 3;
        }

        options = options.WithAbsoluteOutDir();
        var machine = MachineInfo.Collect(options, openFiles);
        Progress.Line($"machine: {machine.Processors} × {machine.CpuModel}, {machine.MemoryBytes / (1024.0 * 1048576):0.0} GiB, {machine.Runtime}, kernel {machine.Kernel}, open files {openFiles}");
        Progress.Line($"fastrelay: {machine.FastRelayServer}");
        Progress.Line($"redis: {machine.RedisServer}");
        Progress.Line($"client runtime: {ClientRuntimeTuning.Describe()}");

        List<string> files;
        string markdown;
        if (options.IsFlowControl)
        {
            var results = await FlowControlRun.RunAllAsync(options).ConfigureAwait(false);
            markdown = FlowReport.Markdown(options, machine, results);
            files = FlowReport.Write(options, machine, results, markdown);
        }
        else if (options.Scenario == Scenario.Connections)
        {
            var results = new List<ConnectionsResult>();
            foreach (var target in options.Targets)
            {
                results.Add(await ConnectionsRun.RunAsync(target, options).ConfigureAwait(false));
            }

            markdown = MarkdownReport.Connections(options, machine, results);
            files = ReportWriter.WriteConnections(options, machine, results, markdown);
        }
        else
        {
            var workload = new Workload(options);
            var results = new List<PubSubResult>();
            foreach (int rate in options.Rates)
            {
                // Interleaved (ws, tcp, redis, ws, tcp, redis, ...) so a noisy neighbour hits every target alike.
                for (int repeat = 1; repeat <= options.Repeats; repeat++)
                {
                    foreach (var target in options.Targets)
                    {
                        var result = await PubSubRun.RunAsync(target, options, workload, rate).ConfigureAwait(false);
                        result.Repeat = repeat;
                        results.Add(result);
                    }
                }
            }

            var rows = options.Repeats > 1 ? Aggregation.Medians(results) : results;
            markdown = MarkdownReport.PubSub(options, machine, results, rows);
            files = ReportWriter.WritePubSub(options, machine, results, rows, markdown);
        }

        Console.Out.WriteLine(markdown);
        foreach (string file in files)
        {
            Progress.Line($"wrote {file}");
        }

        return 0;
    }
}
