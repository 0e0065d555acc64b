using BenchmarkDotNet.Running;
using FastRelay.Benchmarks.Gate;
using FastRelay.Benchmarks.Stress;

namespace FastRelay.Benchmarks;

/// <summary>
/// `dotnet run -c Release --project bench/FastRelay.Benchmarks -- --filter '*'` runs benchmarks (any BenchmarkDotNet
/// switch works: --job short, --inProcess, ...); `-- --gate` runs the allocation gate (see allocation-budgets.json);
/// `-- --wake-stress [seconds]` hunts for lost shard and outbox-writer wake-ups (not a benchmark: a reproducer, see docs/benchmarks.md).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Contains("--gate"))
        {
            return AllocationGate.Run(args);
        }

        if (args.Contains("--wake-stress"))
        {
            return WakeStress.Run(args);
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        bool failed = summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success));
        return failed ? 1 : 0;
    }
}
