using System.Text.Json;
using BenchmarkDotNet.Running;

namespace FastRelay.Benchmarks.Gate;

/// <summary>
/// allocation-budgets.json: benchmark name → the most bytes it may allocate per operation. A name is
/// "Class.Method" (every parameter case) or "Class.Method(Name=value, ...)" (one case; wins over the former).
/// </summary>
internal sealed class AllocationBudgets
{
    public const string FileName = "allocation-budgets.json";

    private readonly Dictionary<string, long> _budgets;

    private AllocationBudgets(Dictionary<string, long> budgets) => _budgets = budgets;

    public IReadOnlyCollection<string> Names => _budgets.Keys;

    public static AllocationBudgets Load(string path)
    {
        using var stream = File.OpenRead(path);
        using var json = JsonDocument.Parse(stream);
        if (json.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{path}: expected an object of benchmark name → bytes per operation");
        }

        var budgets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var entry in json.RootElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt64(out long bytes) || bytes < 0)
            {
                throw new InvalidDataException($"{path}: budget of '{entry.Name}' must be a whole number of bytes, at least 0");
            }

            budgets.Add(entry.Name, bytes);
        }

        return new AllocationBudgets(budgets);
    }

    /// <summary>"Class.Method".</summary>
    public static string MethodName(BenchmarkCase benchmark) =>
        $"{benchmark.Descriptor.Type.Name}.{benchmark.Descriptor.WorkloadMethod.Name}";

    /// <summary>"Class.Method(Name=value, ...)", or "Class.Method" without parameters.</summary>
    public static string CaseName(BenchmarkCase benchmark)
    {
        var parameters = benchmark.Parameters.Items;
        return parameters.Count == 0
            ? MethodName(benchmark)
            : $"{MethodName(benchmark)}({string.Join(", ", parameters.Select(p => $"{p.Name}={p.ToDisplayText()}"))})";
    }

    /// <summary>The budget that applies to <paramref name="benchmark"/>, and the name it is filed under.</summary>
    public bool TryGet(BenchmarkCase benchmark, out long bytesPerOperation, out string name)
    {
        name = CaseName(benchmark);
        if (_budgets.TryGetValue(name, out bytesPerOperation))
        {
            return true;
        }

        name = MethodName(benchmark);
        return _budgets.TryGetValue(name, out bytesPerOperation);
    }
}
