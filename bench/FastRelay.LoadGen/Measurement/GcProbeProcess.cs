using System.Diagnostics;
using System.Text.Json;
using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Targets;

namespace FastRelay.LoadGen.Measurement;

/// <summary>
/// The EventPipe side of --diagnostics: runs bench/FastRelay.GcProbe (a JIT tool: its parser, TraceEvent, is not
/// AOT-safe) attached to the server's diagnostics port, opens and closes its window with the measured window
/// here, and reads back the GC collections and allocated bytes the server reported over EventPipe.
/// </summary>
internal sealed class GcProbeProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ResultTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<string> _errors = [];

    private GcProbeProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                lock (_errors)
                {
                    _errors.Add(line);
                }
            }
        };
        _process.Exited += (_, _) =>
        {
            var failure = new InvalidOperationException($"fastrelay-gcprobe exited ({SafeExitCode()}): {Errors()}");
            _ready.TrySetException(failure);
            _result.TrySetException(failure);
        };
    }

    /// <summary>The probe build: bench/FastRelay.GcProbe's Release output (a .dll run with dotnet).</summary>
    public static string DefaultPath => Path.Combine(RepositoryPaths.Root, "bench", "FastRelay.GcProbe", "bin", "Release", "net10.0", "fastrelay-gcprobe.dll");

    /// <summary>Starts the probe on <paramref name="pid"/> and waits until its EventPipe session runs.</summary>
    public static async Task<GcProbeProcess> StartAsync(string probePath, int pid)
    {
        if (!File.Exists(probePath))
        {
            throw new InvalidOperationException($"GC probe not found at {probePath}: build it with `dotnet build -c Release bench/FastRelay.GcProbe` (or pass --gc-probe PATH)");
        }

        bool managed = probePath.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var start = new ProcessStartInfo(managed ? "dotnet" : probePath)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (managed)
        {
            start.ArgumentList.Add(probePath);
        }

        start.ArgumentList.Add("--pid");
        start.ArgumentList.Add(pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        ClientRuntimeTuning.RestoreFor(start);
        var probe = new GcProbeProcess(new Process { StartInfo = start, EnableRaisingEvents = true });
        if (!probe._process.Start())
        {
            throw new InvalidOperationException($"could not start {start.FileName}");
        }

        probe._process.BeginOutputReadLine();
        probe._process.BeginErrorReadLine();
        try
        {
            await probe._ready.Task.WaitAsync(ReadyTimeout).ConfigureAwait(false);
        }
        catch
        {
            await probe.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return probe;
    }

    /// <summary>Opens the probe's window (call when the measured window opens).</summary>
    public void Begin() => Send("begin");

    /// <summary>Closes the window: the probe stops its session and prints its figures.</summary>
    public void End() => Send("end");

    /// <summary>The figures of the window; throws when the probe failed or did not answer in time.</summary>
    public async Task<ServerGcFigures> ResultAsync()
    {
        string json = await _result.Task.WaitAsync(ResultTimeout).ConfigureAwait(false);
        return ServerGcFigures.Parse(json);
    }

    private void Send(string line)
    {
        try
        {
            _process.StandardInput.WriteLine(line);
            _process.StandardInput.Flush();
        }
        catch (IOException)
        {
            // the probe is gone: ResultAsync reports why
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        if (line == "ready")
        {
            _ready.TrySetResult();
        }
        else if (line.StartsWith('{'))
        {
            _result.TrySetResult(line);
        }
    }

    private string Errors()
    {
        lock (_errors)
        {
            return _errors.Count == 0 ? "no error output" : string.Join(" ", _errors.TakeLast(5));
        }
    }

    private string SafeExitCode()
    {
        try
        {
            return "exit code " + _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "exit code unknown";
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                try
                {
                    _process.StandardInput.Close(); // end of input ends the probe
                }
                catch (IOException)
                {
                }

                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync().ConfigureAwait(false);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // never started
        }

        _process.Dispose();
    }
}

/// <summary>What the server's runtime reported over EventPipe for one window (fastrelay-gcprobe's JSON).</summary>
internal sealed class ServerGcFigures
{
    public double WindowSeconds { get; init; }
    /// <summary>GCStart events per generation (0, 1, 2).</summary>
    public int[] Collections { get; init; } = new int[3];
    /// <summary>GCAllocationTick events: one each time ~100 KB were allocated (per heap).</summary>
    public long AllocationTicks { get; init; }
    public long AllocationTickBytes { get; init; }
    public List<(string Type, long Ticks, long Bytes)> AllocationByType { get; init; } = [];
    /// <summary>System.Runtime "alloc-rate" counter summed over the intervals that ended in the window; NaN when not emitted.</summary>
    public double CounterAllocatedBytes { get; init; } = double.NaN;
    public double CounterCoveredSeconds { get; init; }
    /// <summary>Provider/event → count over the whole session: what the runtime actually emits.</summary>
    public List<(string Name, long Count)> EventsSeen { get; init; } = [];

    public static ServerGcFigures Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var collections = new int[3];
        int g = 0;
        foreach (var n in root.GetProperty("gc_count").EnumerateArray())
        {
            if (g < 3)
            {
                collections[g++] = n.GetInt32();
            }
        }

        var byType = new List<(string, long, long)>();
        foreach (var t in root.GetProperty("allocation_by_type").EnumerateArray())
        {
            byType.Add((t.GetProperty("type").GetString() ?? "", t.GetProperty("ticks").GetInt64(), t.GetProperty("bytes").GetInt64()));
        }

        double counterBytes = double.NaN;
        double covered = 0;
        if (root.GetProperty("counters").TryGetProperty("alloc-rate", out var rate))
        {
            counterBytes = rate.GetProperty("sum").GetDouble();
            covered = rate.GetProperty("covered_s").GetDouble();
        }

        var seen = new List<(string, long)>();
        foreach (var p in root.GetProperty("events_seen").EnumerateObject())
        {
            seen.Add((p.Name, p.Value.GetInt64()));
        }

        return new ServerGcFigures
        {
            WindowSeconds = root.GetProperty("window_s").GetDouble(),
            Collections = collections,
            AllocationTicks = root.GetProperty("allocation_ticks").GetInt64(),
            AllocationTickBytes = root.GetProperty("allocation_tick_bytes").GetInt64(),
            AllocationByType = byType,
            CounterAllocatedBytes = counterBytes,
            CounterCoveredSeconds = covered,
            EventsSeen = seen,
        };
    }
}
