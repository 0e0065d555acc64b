using System.Globalization;
using FastRelay.LoadGen.Targets;

namespace FastRelay.LoadGen.Cli;

/// <summary>The scenarios the load generator runs.</summary>
internal enum Scenario
{
    Fanout,
    Rooms,
    Latency,
    Connections,
    NoisyTenant,
    SlowConsumer,
}

/// <summary>Parsed command line: the scenario, its workload shape and the run limits.</summary>
internal sealed class LoadGenOptions
{
    public const string Usage = """
        fastrelay-loadgen — FastRelay vs Redis pub/sub, same workload, one run

        Usage:
          dotnet run -c Release --project bench/FastRelay.LoadGen -- SCENARIO [options]

        Scenarios (defaults in brackets):
          fanout        1 topic, S subscribers [1000], P publishers [1], max rate [--rate 0]
          rooms         T topics [1000] x S subscribers each [5], P publishers [10] spread over the topics
          latency       1 topic, S subscribers [50], P publishers [1], fixed moderate rate [--rate 2000]
          connections   N idle connections [10000]: server RSS per connection (+ a labelled 1M projection)
          noisy-tenant  two tenants (FastRelay only): tenant acme floods [--flood-publishers 4, max rate] while
                        tenant globex publishes at a fixed rate [--rate 1000] to S subscribers [20]; run once
                        without the flood (baseline) and once with it
          slow-consumer S fast subscribers [20] + K that never read [--slow 5], 1 publisher at a fixed rate
                        [--rate 2000] of P-byte payloads [2048], a mix of droppable/partial/critical events;
                        run once without the slow ones (baseline) and once with them
          selftest      check the client parsers against EnvelopeCodec and time them (no server needed)

        Workload options:
          --targets LIST       fastrelay-ws,fastrelay-tcp,redis (default: all three, back to back;
                               noisy-tenant: the two FastRelay ones)
          --subscribers N      subscribers per topic
          --publishers N       publishing connections
          --topics N           topics (rooms)
          --rate N             messages/s per publisher; 0 = as fast as the flow-control window allows
          --rates A,B,...      sweep several rates (one run per rate and target; adds a latency-vs-throughput chart)
          --payload BYTES      payload size, at least 8 (the send timestamp) [64]
          --duration S         measured seconds per run [10]
          --warmup S           unmeasured seconds before the measurement [2]
          --repeat N           run every (rate, target) N times, interleaved; tables and charts show medians [1]
          --drain S            longest wait for in-flight deliveries after publishing stops [3]
          --window N           per publisher: at most N unacknowledged publishes and N x subscribers-per-topic
                               undelivered messages in flight [128]
          --max-messages N     hard cap on messages published per run [50000000]
          --connections N      connections scenario: idle connections to open [10000]
          --settle S           connections scenario: wait before reading RSS [2]
          --source-ips N       spread client sockets over 127.0.0.1..127.0.0.N (when ephemeral ports run short) [1]

        Flow-control options (noisy-tenant, slow-consumer):
          --flood-publishers N   noisy tenant's publishers, one topic each [4]
          --flood-subscribers N  subscribers per noisy-tenant topic [1]
          --flood-window N       noisy tenant's window per publisher (like --window) [1024]
          --flood-rate N         noisy tenant's msgs/s per publisher, 0 = max [0]
          --slow N               subscribers that never read after subscribing [5]
          --droppable PCT        share of events published droppable (flags=1) [50]
          --partial PCT          share of events published as partials (flags=2, a token stream) [0]
          --slow-rcvbuf BYTES    kernel receive buffer (SO_RCVBUF) of the slow subscribers [4096]

        Target options:
          --server PATH        FastRelay server: a native binary or fastrelay.dll
                               (default: artifacts/native/fastrelay if it exists, else
                               src/FastRelay.Server/bin/Release/net10.0/fastrelay.dll run with `dotnet`)
          --redis-server PATH  redis-server binary [redis-server on PATH]
          --shards N           FastRelay shards (default: the server's, one per core)
          --diagnostics        FastRelay targets (fanout, rooms, latency): attach to the server over its diagnostics
                               port (EventPipe) for the measured window and report its GC collections and allocated
                               bytes per delivered message, cross-checked with $sys.stats (server started with a 1 s
                               stats interval). Needs the GC probe: dotnet build -c Release bench/FastRelay.GcProbe
          --gc-probe PATH      the probe to run (default: bench/FastRelay.GcProbe/bin/Release/net10.0/fastrelay-gcprobe.dll)

        Output:
          --out DIR            results JSON, Markdown and SVG charts [artifacts/loadgen]
          --name NAME          base name of the output files [the scenario; SCENARIO-sweep with --rates]
          --recv-buffer BYTES  receive buffer per client connection [32768]
          --connect-parallel N connections set up concurrently [64]
        """;

    public Scenario Scenario { get; private set; }

    public List<TargetKind> Targets { get; } = [];

    public int Subscribers { get; private set; }

    public int Publishers { get; private set; }

    public int Topics { get; private set; }

    /// <summary>Rates to run, messages/s per publisher; 0 = max.</summary>
    public List<int> Rates { get; } = [];

    public int PayloadBytes { get; private set; } = 64;

    public double DurationSeconds { get; private set; } = 10;

    public double WarmupSeconds { get; private set; } = 2;

    public double DrainSeconds { get; private set; } = 3;

    public int Repeats { get; private set; } = 1;

    public int Window { get; private set; } = 128;

    public long MaxMessages { get; private set; } = 50_000_000;

    public int Connections { get; private set; } = 10_000;

    public double SettleSeconds { get; private set; } = 2;

    public int SourceIps { get; private set; } = 1;

    public string? ServerPath { get; private set; }

    public string RedisServerPath { get; private set; } = "redis-server";

    public int? Shards { get; private set; }

    /// <summary>Attach the GC probe (EventPipe) and the $sys.stats watcher to FastRelay targets.</summary>
    public bool Diagnostics { get; private set; }

    public string? GcProbePath { get; private set; }

    public string OutDir { get; private set; } = Path.Combine("artifacts", "loadgen");

    public int ReceiveBufferBytes { get; private set; } = 32 * 1024;

    private bool _outDirGiven;

    public int ConnectParallelism { get; private set; } = 64;

    public int FloodPublishers { get; private set; } = 4;

    public int FloodSubscribers { get; private set; } = 1;

    public int FloodWindow { get; private set; } = 1024;

    public int FloodRate { get; private set; }

    public int SlowSubscribers { get; private set; } = 5;

    public int DroppablePercent { get; private set; } = 50;

    public int PartialPercent { get; private set; }

    public int SlowReceiveBufferBytes { get; private set; } = 4096;

    /// <summary>True for the two-variant flow-control scenarios (baseline + stressed run per target).</summary>
    public bool IsFlowControl => Scenario is Scenario.NoisyTenant or Scenario.SlowConsumer;

    /// <summary>True when the run sweeps more than one rate.</summary>
    public bool IsSweep => Rates.Count > 1;

    public string ScenarioName => Scenario switch
    {
        Scenario.NoisyTenant => "noisy-tenant",
        Scenario.SlowConsumer => "slow-consumer",
        _ => Scenario.ToString().ToLowerInvariant(),
    };

    /// <summary>Base name of the files written under <see cref="OutDir"/>.</summary>
    public string OutputName => _name ?? (IsSweep ? $"{ScenarioName}-sweep" : ScenarioName);

    private string? _name;

    public static LoadGenOptions Parse(string[] args)
    {
        if (args.Length == 0)
        {
            throw new UsageException("a scenario is required");
        }

        if (args[0] is "-h" or "--help" or "help")
        {
            throw new UsageException(null);
        }

        var o = new LoadGenOptions
        {
            Scenario = args[0] switch
            {
                "fanout" => Scenario.Fanout,
                "rooms" => Scenario.Rooms,
                "latency" => Scenario.Latency,
                "connections" => Scenario.Connections,
                "noisy-tenant" => Scenario.NoisyTenant,
                "slow-consumer" => Scenario.SlowConsumer,
                _ => throw new UsageException($"unknown scenario '{args[0]}' (fanout, rooms, latency, connections, noisy-tenant, slow-consumer)"),
            },
        };

        // Scenario defaults; flags override them.
        (o.Subscribers, o.Publishers, o.Topics, int rate) = o.Scenario switch
        {
            Scenario.Fanout => (1000, 1, 1, 0),
            Scenario.Rooms => (5, 10, 1000, 0),
            Scenario.Latency => (50, 1, 1, 2000),
            Scenario.NoisyTenant => (20, 1, 1, 1000),
            Scenario.SlowConsumer => (20, 1, 1, 2000),
            _ => (0, 0, 0, 0),
        };

        string? rates = null;
        string? targets = null;
        bool payloadGiven = false;
        for (int i = 1; i < args.Length; i++)
        {
            string name = args[i];
            string? inline = null;
            int eq = name.IndexOf('=');
            if (eq > 0)
            {
                inline = name[(eq + 1)..];
                name = name[..eq];
            }

            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                if (i + 1 >= args.Length)
                {
                    throw new UsageException($"option {name} needs a value");
                }

                return args[++i];
            }

            switch (name)
            {
                case "--targets": targets = Value(); break;
                case "--subscribers": o.Subscribers = PositiveInt(name, Value()); break;
                case "--publishers": o.Publishers = PositiveInt(name, Value()); break;
                case "--topics": o.Topics = PositiveInt(name, Value()); break;
                case "--rate": rate = NonNegativeInt(name, Value()); break;
                case "--rates": rates = Value(); break;
                case "--payload": o.PayloadBytes = PositiveInt(name, Value()); payloadGiven = true; break;
                case "--duration": o.DurationSeconds = PositiveDouble(name, Value()); break;
                case "--warmup": o.WarmupSeconds = NonNegativeDouble(name, Value()); break;
                case "--drain": o.DrainSeconds = NonNegativeDouble(name, Value()); break;
                case "--repeat": o.Repeats = PositiveInt(name, Value()); break;
                case "--window": o.Window = PositiveInt(name, Value()); break;
                case "--max-messages": o.MaxMessages = PositiveInt(name, Value()); break;
                case "--connections": o.Connections = PositiveInt(name, Value()); break;
                case "--settle": o.SettleSeconds = NonNegativeDouble(name, Value()); break;
                case "--source-ips": o.SourceIps = PositiveInt(name, Value()); break;
                case "--server": o.ServerPath = Value(); break;
                case "--redis-server": o.RedisServerPath = Value(); break;
                case "--shards": o.Shards = PositiveInt(name, Value()); break;
                case "--diagnostics": o.Diagnostics = true; break;
                case "--gc-probe": o.GcProbePath = Value(); break;
                case "--out": o.OutDir = Value(); o._outDirGiven = true; break;
                case "--name": o._name = Value(); break;
                case "--recv-buffer": o.ReceiveBufferBytes = PositiveInt(name, Value()); break;
                case "--connect-parallel": o.ConnectParallelism = PositiveInt(name, Value()); break;
                case "--flood-publishers": o.FloodPublishers = PositiveInt(name, Value()); break;
                case "--flood-subscribers": o.FloodSubscribers = PositiveInt(name, Value()); break;
                case "--flood-window": o.FloodWindow = PositiveInt(name, Value()); break;
                case "--flood-rate": o.FloodRate = NonNegativeInt(name, Value()); break;
                case "--slow": o.SlowSubscribers = NonNegativeInt(name, Value()); break;
                case "--droppable": o.DroppablePercent = Percent(name, Value()); break;
                case "--partial": o.PartialPercent = Percent(name, Value()); break;
                case "--slow-rcvbuf": o.SlowReceiveBufferBytes = PositiveInt(name, Value()); break;
                case "-h" or "--help": throw new UsageException(null);
                default: throw new UsageException($"unknown option '{name}'");
            }
        }

        if (rates is not null)
        {
            foreach (string part in rates.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                o.Rates.Add(NonNegativeInt("--rates", part));
            }

            if (o.Rates.Count == 0)
            {
                throw new UsageException("--rates needs at least one rate");
            }
        }
        else
        {
            o.Rates.Add(rate);
        }

        if (o.Scenario == Scenario.SlowConsumer && !payloadGiven)
        {
            o.PayloadBytes = 2048; // enough bytes/s to push a non-reading client past the outbox caps in seconds
        }

        if (targets is null && o.Scenario == Scenario.NoisyTenant)
        {
            o.Targets.AddRange([TargetKind.FastRelayWebSocket, TargetKind.FastRelayTcp]);
        }
        else if (targets is null)
        {
            o.Targets.AddRange([TargetKind.FastRelayWebSocket, TargetKind.FastRelayTcp, TargetKind.Redis]);
        }
        else
        {
            foreach (string part in targets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var kind = TargetKinds.Parse(part) ?? throw new UsageException($"unknown target '{part}' (fastrelay-ws, fastrelay-tcp, redis)");
                if (!o.Targets.Contains(kind))
                {
                    o.Targets.Add(kind);
                }
            }
        }

        if (o.Scenario == Scenario.NoisyTenant && o.Targets.Contains(TargetKind.Redis))
        {
            throw new UsageException("noisy-tenant runs on FastRelay only: Redis has no tenants (use --targets fastrelay-ws,fastrelay-tcp)");
        }

        if (o.IsFlowControl && o.Rates.Count > 1)
        {
            throw new UsageException("noisy-tenant and slow-consumer take one --rate, not --rates");
        }

        if (o.DroppablePercent + o.PartialPercent > 100)
        {
            throw new UsageException("--droppable + --partial must be at most 100 %");
        }

        if (o.PayloadBytes < 8)
        {
            throw new UsageException("--payload must be at least 8 bytes: the first 8 carry the send timestamp");
        }

        if (o.SourceIps > 254)
        {
            throw new UsageException("--source-ips must be 1..254");
        }

        if (o.Scenario == Scenario.Connections && o.Connections > 15_000)
        {
            throw new UsageException("--connections must be at most 15000 (the open-files hard limit is 20000 per process)");
        }

        if (o.Scenario != Scenario.Connections && (long)o.Topics * o.Subscribers > 15_000)
        {
            throw new UsageException("topics x subscribers must be at most 15000 connections (open-files hard limit 20000 per process)");
        }

        return o;
    }

    /// <summary>
    /// --out made absolute: a given path is taken from the current directory; the default lives under the
    /// repository root (artifacts/loadgen) wherever the tool was started from.
    /// </summary>
    public LoadGenOptions WithAbsoluteOutDir()
    {
        OutDir = _outDirGiven ? Path.GetFullPath(OutDir) : Path.Combine(RepositoryPaths.Root, "artifacts", "loadgen");
        return this;
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v
            : throw new UsageException($"{name} must be a positive integer, got '{value}'");

    private static int NonNegativeInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 0
            ? v
            : throw new UsageException($"{name} must be a non-negative integer, got '{value}'");

    private static int Percent(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v is >= 0 and <= 100
            ? v
            : throw new UsageException($"{name} must be a percentage 0..100, got '{value}'");

    private static double PositiveDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0
            ? v
            : throw new UsageException($"{name} must be a positive number, got '{value}'");

    private static double NonNegativeDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0
            ? v
            : throw new UsageException($"{name} must be a non-negative number, got '{value}'");
}

/// <summary>A command-line mistake: printed with the usage, exit code 2.</summary>
internal sealed class UsageException(string? message) : Exception(message ?? "");
