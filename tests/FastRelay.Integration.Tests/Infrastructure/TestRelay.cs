using FastRelay.Core;
using FastRelay.Core.Tenancy;
using FastRelay.Transport;

namespace FastRelay.Integration.Tests.Infrastructure;

/// <summary>A real relay (engine + WebSocket, TCP and Unix listeners on free ports) started in-process for one test.</summary>
public sealed class TestRelay : IAsyncDisposable
{
    private readonly string _socketDir;

    private TestRelay(RelayEngine engine, RelayServer server, string socketDir)
    {
        Engine = engine;
        Server = server;
        _socketDir = socketDir;
    }

    public RelayEngine Engine { get; }

    public RelayServer Server { get; }

    public Uri WebSocketUri => Server.WebSocketUri!;

    public Uri TcpUri => Server.TcpUri!;

    public Uri UnixUri => Server.UnixUri!;

    public System.Net.IPEndPoint WebSocketEndPoint => Server.WebSocketEndPoint!;

    public System.Net.IPEndPoint TcpEndPoint => Server.TcpEndPoint!;

    /// <summary>The URI of one transport by name: "ws", "tcp" or "unix".</summary>
    public Uri UriFor(string transport) => transport switch
    {
        "ws" => WebSocketUri,
        "tcp" => TcpUri,
        "unix" => UnixUri,
        _ => throw new ArgumentOutOfRangeException(nameof(transport), transport, "ws, tcp or unix"),
    };

    public static TestRelay Start(Action<RelayOptions>? configure = null, Action<TransportOptions>? transport = null, TimeProvider? time = null)
    {
        var options = new RelayOptions { Shards = 4, NodeName = "test-node" };
        configure?.Invoke(options);
        string dir = Directory.CreateTempSubdirectory("fastrelay-test-").FullName;
        var transportOptions = new TransportOptions
        {
            WebSocket = "127.0.0.1:0",
            Tcp = "127.0.0.1:0",
            Unix = Path.Combine(dir, "relay.sock"),
            HandshakeTimeout = TimeSpan.FromSeconds(5),
        };
        transport?.Invoke(transportOptions);
        var engine = new RelayEngine(options, time);
        var server = new RelayServer(engine, transportOptions);
        server.Start();
        return new TestRelay(engine, server, dir);
    }

    /// <summary>Options with two tenants ("acme", "globex") whose secrets the tests use to mint tokens.</summary>
    public static void WithTenants(RelayOptions options)
    {
        options.Tenancy = new TenancyOptions
        {
            Tenants =
            [
                new TenantOptions { Name = "acme", Secrets = [AcmeSecret] },
                new TenantOptions { Name = "globex", Secrets = [GlobexSecret] },
            ],
        };
    }

    public const string AcmeSecret = "acme-secret-0123456789abcdef0123456789abcdef";
    public const string GlobexSecret = "globex-secret-0123456789abcdef0123456789abcdef";

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Engine.Dispose();
        try
        {
            Directory.Delete(_socketDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
