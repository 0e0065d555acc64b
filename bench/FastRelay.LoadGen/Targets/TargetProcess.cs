using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Clients;

namespace FastRelay.LoadGen.Targets;

/// <summary>
/// A server under test, started as its own process on 127.0.0.1 with free ports: the FastRelay server
/// (native binary or fastrelay.dll) or redis-server. Its output goes to a log file; stopping sends SIGTERM.
/// </summary>
internal sealed class TargetProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly object _logLock = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _readyMarker;
    private readonly Queue<string> _tail = new();
    private bool _logClosed;

    private TargetProcess(TargetKind kind, ProcessStartInfo start, string readyMarker, IPEndPoint endPoint, string description, string logPath)
    {
        Kind = kind;
        EndPoint = endPoint;
        Description = description;
        LogPath = logPath;
        _readyMarker = readyMarker;
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        _log = new StreamWriter(logPath, append: false, Encoding.UTF8) { AutoFlush = true };
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Exited += (_, _) => _ready.TrySetException(new InvalidOperationException($"{Kind.Name()} exited with code {SafeExitCode()} before it was ready; last output:\n{Tail()}"));
    }

    public TargetKind Kind { get; }

    /// <summary>Where the simulated clients connect.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>What runs: the binary and how (native AOT, dotnet, redis-server version).</summary>
    public string Description { get; }

    public string LogPath { get; }

    public int Pid => _process.Id;

    /// <summary>FastRelay's raw-TCP listener (every FastRelay target opens one): where the $sys.stats watcher connects.</summary>
    public IPEndPoint? TcpEndPoint { get; private init; }

    /// <param name="serverArgs">Extra FastRelay arguments (e.g. <c>--config FILE</c>); ignored for Redis.</param>
    public static async Task<TargetProcess> StartAsync(TargetKind kind, LoadGenOptions options, string logPath, IReadOnlyList<string>? serverArgs = null)
    {
        var target = kind.IsFastRelay() ? CreateFastRelay(kind, options, logPath, serverArgs ?? []) : CreateRedis(options, logPath);
        await target.RunAsync().ConfigureAwait(false);
        return target;
    }

    private static TargetProcess CreateFastRelay(TargetKind kind, LoadGenOptions options, string logPath, IReadOnlyList<string> serverArgs)
    {
        var (fileName, prefix, description) = ResolveFastRelay(options.ServerPath);
        int wsPort = FreePort();
        int tcpPort = FreePort(wsPort);
        var start = NewStartInfo(fileName);
        foreach (string arg in prefix)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (string arg in new[] { "serve", "--ws", $"127.0.0.1:{wsPort}", "--tcp", $"127.0.0.1:{tcpPort}", "--unix", "off" })
        {
            start.ArgumentList.Add(arg);
        }

        if (options.Shards is int shards)
        {
            start.ArgumentList.Add("--shards");
            start.ArgumentList.Add(shards.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (options.Diagnostics)
        {
            // $sys.stats every second, so the watcher has samples inside a short measured window.
            start.ArgumentList.Add("--Relay:StatsInterval");
            start.ArgumentList.Add("00:00:01");
        }

        foreach (string arg in serverArgs)
        {
            start.ArgumentList.Add(arg);
        }

        int port = kind == TargetKind.FastRelayWebSocket ? wsPort : tcpPort;
        return new TargetProcess(kind, start, "FastRelay ready", new IPEndPoint(IPAddress.Loopback, port), description, logPath)
        {
            TcpEndPoint = new IPEndPoint(IPAddress.Loopback, tcpPort),
        };
    }

    /// <summary>The server to start: (file to execute, arguments before "serve", description).</summary>
    public static (string FileName, string[] Prefix, string Description) ResolveFastRelay(string? serverPath)
    {
        string path = serverPath ?? (File.Exists(RepositoryPaths.NativeServer) ? RepositoryPaths.NativeServer : RepositoryPaths.JitServer);
        path = Path.GetFullPath(path);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException(
                $"FastRelay server not found at {path}. Build it first: `bash native-aot/publish.sh` (native, preferred) or " +
                "`dotnet build -c Release src/FastRelay.Server`, or pass --server PATH.");
        }

        return path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? ("dotnet", [path], $"fastrelay (JIT, dotnet {path})")
            : (path, [], $"fastrelay (native AOT, {path})");
    }

    private static TargetProcess CreateRedis(LoadGenOptions options, string logPath)
    {
        string binary = ResolveRedis(options.RedisServerPath);
        int port = FreePort();
        var start = NewStartInfo(binary);
        // No persistence, loopback only; maxclients below the 20k open-files hard limit so redis does not
        // lower it by itself. Output-buffer limits stay at redis's defaults (pubsub 32mb 8mb 60).
        foreach (string arg in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "19000", "--protected-mode", "yes" })
        {
            start.ArgumentList.Add(arg);
        }

        return new TargetProcess(TargetKind.Redis, start, "Ready to accept connections", new IPEndPoint(IPAddress.Loopback, port), $"{RedisVersion(binary)} ({binary})", logPath);
    }

    /// <summary>The redis-server binary, or a clear error naming the install command.</summary>
    public static string ResolveRedis(string redisServer)
    {
        if (redisServer.Contains('/'))
        {
            return File.Exists(redisServer) ? Path.GetFullPath(redisServer) : throw MissingRedis(redisServer);
        }

        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, redisServer);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw MissingRedis(redisServer);
    }

    private static InvalidOperationException MissingRedis(string name) =>
        new($"redis-server not found ('{name}'). Install it: `apt-get update && apt-get install -y redis-server` (or pass --redis-server PATH, or --targets fastrelay-ws,fastrelay-tcp).");

    /// <summary>`redis-server --version`, e.g. "Redis server v=7.0.15 ...".</summary>
    public static string RedisVersion(string binary)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(binary, "--version") { RedirectStandardOutput = true, UseShellExecute = false })!;
            string text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(5000);
            return text;
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return "redis-server (version unknown)";
        }
    }

    private static ProcessStartInfo NewStartInfo(string fileName)
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            WorkingDirectory = RepositoryPaths.Root,
        };
        ClientRuntimeTuning.RestoreFor(start); // the server runs with its own defaults, not the client's tuning
        return start;
    }

    private async Task RunAsync()
    {
        if (!_process.Start())
        {
            throw new InvalidOperationException($"could not start {_process.StartInfo.FileName}");
        }

        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        try
        {
            await _ready.Task.WaitAsync(StartTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"{Kind.Name()} did not log '{_readyMarker}' within {StartTimeout.TotalSeconds:0} s; last output:\n{Tail()}");
        }
        catch
        {
            await DisposeAsync().ConfigureAwait(false);
            throw;
        }

        // The marker is logged when listening; make sure the port really accepts before clients pile in.
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await probe.ConnectAsync(EndPoint).ConfigureAwait(false);
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_logLock)
        {
            if (_logClosed)
            {
                return;
            }

            _log.WriteLine(line);
            _tail.Enqueue(line);
            if (_tail.Count > 20)
            {
                _tail.Dequeue();
            }
        }

        if (line.Contains(_readyMarker, StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }

    private string Tail()
    {
        lock (_logLock)
        {
            return string.Join('\n', _tail);
        }
    }

    private string SafeExitCode()
    {
        try
        {
            return _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>utime + stime so far, seconds.</summary>
    public double CpuSeconds() => ProcessStats.CpuSeconds(Pid);

    public long RssBytes() => ProcessStats.RssBytes(Pid);

    public long ContextSwitches() => ProcessStats.ContextSwitches(Pid);

    public int Threads() => ProcessStats.Threads(Pid);

    public Dictionary<int, (string Name, double CpuSeconds)> ThreadCpu() => ProcessStats.ThreadCpu(Pid);

    public long PeakRssBytes() => ProcessStats.PeakRssBytes(Pid);

    /// <summary>SIGTERM, then SIGKILL if the process has not exited after <see cref="StopTimeout"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                Posix.Terminate(_process.Id);
                using var timeout = new CancellationTokenSource(StopTimeout);
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
        lock (_logLock)
        {
            _logClosed = true;
            _log.Dispose();
        }
    }

    /// <summary>A port free on 127.0.0.1 right now (the OS picks it), different from <paramref name="not"/>.</summary>
    private static int FreePort(int not = 0)
    {
        while (true)
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            int port = ((IPEndPoint)s.LocalEndPoint!).Port;
            if (port != not)
            {
                return port;
            }
        }
    }
}
