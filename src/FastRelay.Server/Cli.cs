using FastRelay.Core.Tenancy;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FastRelay.Server;

/// <summary>The <c>fastrelay</c> command line: serve, pub, sub, ask, token.</summary>
internal static class Cli
{
    public const string Usage = """
        fastrelay — realtime relay for AI pipelines

        Usage:
          fastrelay serve [--ws HOST:PORT|off] [--tcp HOST:PORT|off] [--unix PATH|off] [--shards N] [--config FILE]
          fastrelay pub TOPIC DATA [--url URL] [--token TOKEN] [--client-id ID] [--message-id ID] [--count N]
          fastrelay sub TOPIC [--url URL] [--token TOKEN] [--client-id ID] [--count N]
          fastrelay ask QUESTION [--topic TOPIC] [--timeout SECONDS] [--url URL] [--token TOKEN] [--job-id ID] [--key KEY]
          fastrelay token --tenant NAME --sub CLIENT_ID [--publish PATTERN]... [--subscribe PATTERN]... [--ttl SECONDS] [--config FILE]

        Defaults: ws://127.0.0.1:7700/ws, tcp://127.0.0.1:7701, unix:///tmp/fastrelay.sock, one shard per core,
        one 'default' tenant without tokens. Settings come from appsettings.json, FASTRELAY_* environment
        variables (FASTRELAY_Transport__Tcp=127.0.0.1:9000) and flags (--Transport:Tcp=...), later winning.
        URL: ws://HOST:PORT/ws, tcp://HOST:PORT or unix:///PATH (default ws://127.0.0.1:7700/ws).
        `sub` prints one JSON line per event: {"topic","epoch","seq","client_id",...,"payload"}.
        `ask` submits a job to the agents on TOPIC (default jobs.echo; run fastrelay-sidecar) and prints the reply as it streams.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Out.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        string verb = args[0];
        string[] rest = args[1..];
        try
        {
            return verb switch
            {
                "serve" => await ServeAsync(rest).ConfigureAwait(false),
                "pub" => await ClientCommands.PublishAsync(CommandArgs.Parse(rest)).ConfigureAwait(false),
                "sub" => await ClientCommands.SubscribeAsync(CommandArgs.Parse(rest)).ConfigureAwait(false),
                "ask" => await ClientCommands.AskAsync(CommandArgs.Parse(rest)).ConfigureAwait(false),
                "token" => MintToken(rest),
                "version" or "--version" => PrintVersion(),
                _ => Fail($"unknown command '{verb}'\n\n{Usage}"),
            };
        }
        catch (CommandLineException ex)
        {
            return Fail(ex.Message);
        }
        catch (Exception ex) when (ex is ArgumentException or TenancyConfigurationException or InvalidOperationException)
        {
            return Fail(ex.Message);
        }
    }

    private static async Task<int> ServeAsync(string[] args)
    {
        var configuration = ServerConfiguration.Build(args);
        var relay = ServerConfiguration.ReadRelay(configuration);
        var transport = ServerConfiguration.ReadTransport(configuration);
        relay.Validate();
        transport.Validate();

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { Args = args });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Services.AddSingleton(relay);
        builder.Services.AddSingleton(transport);
        builder.Services.AddHostedService<RelayHostedService>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = transport.DrainWindow + (transport.CloseTimeout * 3));
        using var host = builder.Build();
        await host.RunAsync().ConfigureAwait(false);
        return 0;
    }

    private static int MintToken(string[] args)
    {
        var parsed = CommandArgs.Parse(args);
        var configuration = ServerConfiguration.Build(parsed.Passthrough.ToArray());
        var tenancy = ServerConfiguration.ReadTenancy(configuration);
        string tenant = parsed.Require("tenant");
        string subject = parsed.Require("sub");
        var options = tenancy.Tenants.FirstOrDefault(t => t.Name == tenant)
            ?? throw new CommandLineException($"tenant '{tenant}' is not configured (configured: {string.Join(", ", tenancy.Tenants.Select(t => t.Name).DefaultIfEmpty("none"))})");
        if (options.Secrets.Count == 0)
        {
            throw new CommandLineException($"tenant '{tenant}' has no secret configured");
        }

        var ttl = TimeSpan.FromSeconds(parsed.GetInt("ttl", 3600));
        var now = DateTimeOffset.UtcNow;
        var publish = parsed.GetAll("publish");
        var subscribe = parsed.GetAll("subscribe");
        var claims = new TenantTokenClaims
        {
            Tenant = tenant,
            ClientId = subject,
            Publish = publish.Count > 0 ? publish : [">"],
            Subscribe = subscribe.Count > 0 ? subscribe : [">"],
            IssuedAt = now,
            ExpiresAt = now + ttl,
        };
        Console.Out.WriteLine(TokenIssuer.Mint(tenant, options.Secrets[0], claims));
        return 0;
    }

    private static int PrintVersion()
    {
        Console.Out.WriteLine(typeof(Cli).Assembly.GetName().Version?.ToString() ?? "0.0.0");
        return 0;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"fastrelay: {message}");
        return 2;
    }
}
