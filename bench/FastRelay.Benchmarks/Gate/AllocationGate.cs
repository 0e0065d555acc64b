using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace FastRelay.Benchmarks.Gate;

/// <summary>
/// `--gate`: runs every benchmark that has an allocation budget with a short in-process job, prints allocated bytes
/// per operation against the budget, and fails (exit 1) when one is over, failed, or a budget names no benchmark.
/// </summary>
internal static class AllocationGate
{
    public static int Run(string[] args)
    {
        string path = ArgValue(args, "--budgets") ?? Path.Combine(AppContext.BaseDirectory, AllocationBudgets.FileName);
        var budgets = AllocationBudgets.Load(path);

        // Short and in-process: no per-benchmark build, a few 100 ms iterations. Allocations do not need a long run.
        var job = Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1)
            .WithWarmupCount(2)
            .WithIterationCount(3)
            .WithIterationTime(TimeInterval.FromMilliseconds(100))
            .WithId("Gate");
        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddLogger(ConsoleLogger.Default)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddFilter(new SimpleFilter(b => budgets.TryGet(b, out _, out _)))
            .WithOptions(ConfigOptions.DisableLogFile);

        var types = typeof(Program).Assembly.GetTypes()
            .Where(t => t.IsPublic && !t.IsAbstract && t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkDotNet.Attributes.BenchmarkAttribute), false)))
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .ToArray();
        var summaries = BenchmarkRunner.Run(types, config);
        return Report(budgets, summaries.SelectMany(s => s.Reports).ToArray(), summaries.Any(s => s.HasCriticalValidationErrors));
    }

    private static int Report(AllocationBudgets budgets, BenchmarkReport[] reports, bool validationErrors)
    {
        var rows = new List<string[]>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        int failures = 0;
        foreach (var report in reports)
        {
            var benchmark = report.BenchmarkCase;
            budgets.TryGet(benchmark, out long budget, out string budgetName);
            used.Add(budgetName);
            long? perOp = report.GcStats.GetBytesAllocatedPerOperation(benchmark);
            long total = report.GcStats.GetTotalAllocatedBytes(excludeAllocationQuantumSideEffects: false) ?? -1;
            long ops = report.GcStats.TotalOperations;
            string verdict;
            if (!report.Success || perOp is null)
            {
                verdict = "FAILED (no result)";
                failures++;
            }
            else if (perOp.Value > budget)
            {
                verdict = "OVER BUDGET";
                failures++;
            }
            else
            {
                verdict = "ok";
            }

            rows.Add([
                AllocationBudgets.CaseName(benchmark),
                perOp?.ToString(CultureInfo.InvariantCulture) ?? "?",
                budget.ToString(CultureInfo.InvariantCulture),
                total < 0 ? "?" : total.ToString("N0", CultureInfo.InvariantCulture),
                ops.ToString("N0", CultureInfo.InvariantCulture),
                verdict,
            ]);
        }

        foreach (var stale in budgets.Names.Where(n => !used.Contains(n)).Order(StringComparer.Ordinal))
        {
            rows.Add([stale, "-", "-", "-", "-", "FAILED (budget names no benchmark)"]);
            failures++;
        }

        Console.WriteLine();
        Console.WriteLine("Allocation gate (bytes per operation, from BenchmarkDotNet's MemoryDiagnoser, whole process)");
        PrintTable(["Benchmark", "B/op", "Budget", "Allocated total", "Operations", "Verdict"], rows);
        if (validationErrors)
        {
            Console.WriteLine("BenchmarkDotNet reported critical validation errors.");
            failures++;
        }

        Console.WriteLine(failures == 0
            ? $"Allocation gate passed: {reports.Length} benchmarks within budget."
            : $"Allocation gate FAILED: {failures} problem(s).");
        return failures == 0 ? 0 : 1;
    }

    private static void PrintTable(string[] header, List<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Line(string[] cells) => "| " + string.Join(" | ", cells.Select((c, i) => i is 0 or 5 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))) + " |";
        Console.WriteLine(Line(header));
        Console.WriteLine("|" + string.Join("|", widths.Select((w, i) => i is 0 or 5 ? new string('-', w + 2) : new string('-', w + 1) + ":")) + "|");
        foreach (var row in rows)
        {
            Console.WriteLine(Line(row));
        }
    }

    private static string? ArgValue(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
