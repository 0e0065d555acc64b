using System.Runtime.InteropServices;
using FastRelay.Client;
using FastRelay.Sidecar.Agents;
using FastRelay.Sidecar.Calls;
using FastRelay.Sidecar.Configuration;
using FastRelay.Sidecar.Running;

namespace FastRelay.Sidecar;

/// <summary>The <c>fastrelay-sidecar</c> command line: run the agents, check a configuration, try an agent's model locally.</summary>
internal static class SidecarCli
{
    public const string Usage = """
        fastrelay-sidecar — runs the agents of a configuration against a FastRelay relay

        Usage:
          fastrelay-sidecar run --config FILE [--relay URL] [--quiet]  run the agents against the relay until SIGTERM/Ctrl-C
          fastrelay-sidecar check --config FILE                    validate the configuration and list its agents
          fastrelay-sidecar try --config FILE [--agent NAME] TEXT  call an agent's model once, no relay: prints tokens as they stream

        Examples: fastrelay-sidecar run --config examples/echo-agent.json      (with `fastrelay serve` running)
                  fastrelay-sidecar try --config examples/echo-agent.json "hello there"
        --relay overrides the configuration's relay URL (unix:///PATH, tcp://HOST:PORT, ws://HOST:PORT/ws).
        On SIGTERM or Ctrl-C `run` drains: it stops taking jobs, lets jobs in progress finish (jobs.drainTimeoutMs),
        and hands the rest back to the group.
        Exit codes: 0 ok, 1 degraded reply, 2 usage or configuration error.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Out.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        try
        {
            return args[0] switch
            {
                "run" => await RunAgentsAsync(Options.Parse(args[1..])).ConfigureAwait(false),
                "check" => Check(Options.Parse(args[1..])),
                "try" => await TryAsync(Options.Parse(args[1..])).ConfigureAwait(false),
                _ => Fail($"unknown command '{args[0]}'\n\n{Usage}"),
            };
        }
        catch (UsageException ex)
        {
            return Fail(ex.Message);
        }
        catch (SidecarConfigException ex)
        {
            return Fail(ex.Message);
        }
    }

    private static async Task<int> RunAgentsAsync(Options options)
    {
        SidecarConfig config = SidecarConfig.Load(options.Require("config"));
        Uri? relay = null;
        if (options.Get("relay") is { } url && !Uri.TryCreate(url, UriKind.Absolute, out relay))
        {
            throw new UsageException($"--relay: \"{url}\" is not a URL");
        }

        var log = new SidecarLog(verbose: !options.Flag("quiet"));
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });

        using var models = new ModelChainFactory();
        SidecarHost host;
        try
        {
            host = await SidecarHost.StartAsync(config, models, log, relay, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        catch (FastRelayException ex)
        {
            log.Error($"the relay refused: {ex.Message}");
            return 1;
        }

        await using (host.ConfigureAwait(false))
        {
            // Runs until SIGTERM/Ctrl-C, or until the relay connection is gone for good (e.g. the token was refused on
            // a reconnect): a sidecar that cannot reach its relay must not look healthy.
            Task stopped = Task.Delay(Timeout.Infinite, stop.Token);
            Task first = await Task.WhenAny(stopped, host.Client.Closed).ConfigureAwait(false);
            if (first != stopped)
            {
                DisconnectInfo lost = await host.Client.Closed.ConfigureAwait(false);
                log.Error($"the relay connection is closed for good: {lost.Reason}");
                await host.StopAsync().ConfigureAwait(false);
                return 1;
            }

            await host.StopAsync().ConfigureAwait(false);
        }

        return 0;
    }

    private static int Check(Options options)
    {
        SidecarConfig config = SidecarConfig.Load(options.Require("config"));
        Console.Out.WriteLine($"relay {config.RelayUrl}");
        foreach (AgentSpec agent in config.Agents)
        {
            string models = string.Join(" → ", Chain(agent.Model).Select(m => $"{m.Name} ({ModelAttempt.Format(m.Policy.Timeout)}, {m.Policy.MaxRetries} retries)"));
            string emits = string.Join(", ", new[] { agent.Emits.Topic, agent.Emits.Reply ? "reply topic" : null }.OfType<string>());
            Console.Out.WriteLine($"agent {agent.Name}: consumes {agent.Consumes} as group {agent.Group}, {agent.Concurrency} workers, model {models}, emits {emits}");
        }

        return 0;
    }

    private static async Task<int> TryAsync(Options options)
    {
        SidecarConfig config = SidecarConfig.Load(options.Require("config"));
        string? name = options.Get("agent");
        AgentSpec spec = name is null
            ? config.Agents[0]
            : config.Agents.FirstOrDefault(a => a.Name == name) ?? throw new UsageException($"no agent named '{name}' in the configuration");
        if (options.Positional.Count == 0)
        {
            throw new UsageException("try needs the input text");
        }

        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };

        using var models = new ModelChainFactory();
        ResilientModelCaller caller = models.CreateCaller(spec.Model);
        ModelCallResult? result = null;
        try
        {
            await foreach (ModelCallUpdate update in caller.CallAsync(string.Join(' ', options.Positional), cts.Token).ConfigureAwait(false))
            {
                switch (update)
                {
                    case ModelPartial partial:
                        Console.Out.Write(partial.Delta);
                        Console.Out.Flush();
                        break;
                    case ModelCallResult final:
                        result = final;
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            Console.Error.WriteLine("\ncancelled");
            return 130;
        }

        Console.Out.WriteLine();
        if (result!.Degraded)
        {
            Console.Error.WriteLine($"[degraded: {result.Reason.ToString().ToLowerInvariant()}] model {result.Model}, {result.Attempts} attempts: {result.Error}");
            return 1;
        }

        Console.Error.WriteLine($"[final] model {result.Model}, {result.Attempts} attempts, {result.Partials} partials, finish {result.FinishReason}");
        return 0;
    }

    private static IEnumerable<ModelSpec> Chain(ModelSpec spec)
    {
        for (ModelSpec? s = spec; s is not null; s = s.Fallback)
        {
            yield return s;
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"fastrelay-sidecar: {message}");
        return 2;
    }

    private sealed class UsageException(string message) : Exception(message);

    /// <summary>--name value options and positional words.</summary>
    private sealed class Options
    {
        private static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "quiet" };

        private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

        public List<string> Positional { get; } = [];

        public static Options Parse(string[] args)
        {
            var options = new Options();
            for (int i = 0; i < args.Length; i++)
            {
                string arg = args[i];
                if (arg == "--")
                {
                    options.Positional.AddRange(args[(i + 1)..]);
                    break;
                }

                if (!arg.StartsWith("--", StringComparison.Ordinal))
                {
                    options.Positional.Add(arg);
                    continue;
                }

                string name = arg[2..];
                if (Flags.Contains(name))
                {
                    options._values[name] = "true";
                    continue;
                }

                int eq = name.IndexOf('=');
                if (eq >= 0)
                {
                    options._values[name[..eq]] = name[(eq + 1)..];
                }
                else if (i + 1 < args.Length)
                {
                    options._values[name] = args[++i];
                }
                else
                {
                    throw new UsageException($"option --{name} needs a value");
                }
            }

            return options;
        }

        public string? Get(string name) => _values.GetValueOrDefault(name);

        public bool Flag(string name) => _values.ContainsKey(name);

        public string Require(string name) => Get(name) ?? throw new UsageException($"--{name} is required");
    }
}
