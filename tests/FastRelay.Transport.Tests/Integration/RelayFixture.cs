using System.Net;
using FastRelay.Core;
using FastRelay.Transport;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// A real relay started in-process for one test: <c>RelayEngine</c> (2 shards) and <c>RelayServer</c> with WebSocket
/// and raw TCP listeners on free loopback ports and a Unix socket in a fresh temp directory.
/// </summary>
/// <remarks>
/// The default handshake timeout is long enough for a cold <c>ClientWebSocket</c> or a Python start-up on a busy
/// 2-core machine; the timeout tests start their own server with a short one.
/// </remarks>
internal sealed class RelayFixture : IAsyncDisposable
{
    /// <summary>MaxMessageBytes of every fixture: small, so size-limit tests send little.</summary>
    public const int MaxMessageBytes = 4096;

    public const string NodeName = "it-node";

    private readonly string _socketDir;

    private RelayFixture(RelayEngine engine, RelayServer server, string socketDir)
    {
        Engine = engine;
        Server = server;
        _socketDir = socketDir;
    }

    public RelayEngine Engine { get; }

    public RelayServer Server { get; }

    public IPEndPoint WebSocketEndPoint => Server.WebSocketEndPoint!;

    public IPEndPoint TcpEndPoint => Server.TcpEndPoint!;

    public string UnixPath => Server.UnixPath!;

    public Uri WebSocketUri => Server.WebSocketUri!;

    public TimeSpan HandshakeTimeout => Server.Options.HandshakeTimeout;

    /// <summary>
    /// The I/O engine every fixture uses: <c>FASTRELAY_IO_ENGINE</c> (Auto, Epoll or Sockets) when set, else Auto,
    /// so the whole suite runs once per engine.
    /// </summary>
    public static IoEngine IoEngineUnderTest { get; } =
        Enum.TryParse<IoEngine>(Environment.GetEnvironmentVariable("FASTRELAY_IO_ENGINE"), ignoreCase: true, out var engine) ? engine : IoEngine.Auto;

    public static RelayFixture Start(TimeSpan? handshakeTimeout = null, Action<RelayOptions>? relay = null, Action<TransportOptions>? transport = null)
    {
        string dir = Directory.CreateTempSubdirectory("fastrelay-wsit-").FullName;
        var relayOptions = new RelayOptions { Shards = 2, NodeName = NodeName, MaxMessageBytes = MaxMessageBytes };
        relay?.Invoke(relayOptions);
        var engine = new RelayEngine(relayOptions);
        try
        {
            var transportOptions = new TransportOptions
            {
                WebSocket = "127.0.0.1:0",
                Tcp = "127.0.0.1:0",
                Unix = Path.Combine(dir, "relay.sock"),
                HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(5),
                CloseTimeout = TimeSpan.FromSeconds(1),
                IoEngine = IoEngineUnderTest,
            };
            transport?.Invoke(transportOptions);
            var server = new RelayServer(engine, transportOptions);
            server.Start();
            return new RelayFixture(engine, server, dir);
        }
        catch
        {
            engine.Dispose();
            Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    /// <summary>A connected client on one of the three listeners: "ws" (upgraded, no HELLO yet), "tcp" or "unix".</summary>
    public async Task<IEnvelopeClient> ConnectAsync(string transport, int receiveBufferBytes = 0) => transport switch
    {
        "ws" => await WsClient.OpenAsync(WebSocketEndPoint, receiveBufferBytes),
        "tcp" => await RawClient.ConnectTcpAsync(TcpEndPoint, receiveBufferBytes),
        "unix" => await RawClient.ConnectUnixAsync(UnixPath),
        _ => throw new ArgumentOutOfRangeException(nameof(transport), transport, "ws, tcp or unix"),
    };

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
