namespace FastRelay.Transport;

/// <summary>Listener endpoints and connection-level limits. An empty endpoint disables that listener.</summary>
public sealed class TransportOptions
{
    /// <summary>WebSocket listener, host:port (e.g. 127.0.0.1:7700). Port 0 picks a free port.</summary>
    public string? WebSocket { get; set; } = "127.0.0.1:7700";

    /// <summary>Path that accepts the WebSocket upgrade.</summary>
    public string WebSocketPath { get; set; } = "/ws";

    /// <summary>Raw TCP listener (length-prefixed envelopes), host:port.</summary>
    public string? Tcp { get; set; } = "127.0.0.1:7701";

    /// <summary>Unix-domain socket path (length-prefixed envelopes).</summary>
    public string? Unix { get; set; } = Path.Combine(Path.GetTempPath(), "fastrelay.sock");

    /// <summary>Time a new connection has to finish the WebSocket upgrade and send HELLO.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest HTTP upgrade request accepted.</summary>
    public int MaxHandshakeBytes { get; set; } = 8 * 1024;

    /// <summary>Listen backlog.</summary>
    public int Backlog { get; set; } = 1024;

    /// <summary>Bytes the writer gathers into one send.</summary>
    public int SendBufferBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// Let a shard thread that is about to go idle write a connection's queued frames itself, without blocking,
    /// instead of waking the connection's writer through the thread pool (whatever does not go out at once is left
    /// to the writer). Saves a thread-pool hop and a context switch per connection per batch at moderate rates.
    /// </summary>
    public bool InlineSends { get; set; } = true;

    /// <summary>
    /// How a connection waits for input: <see cref="Transport.IoEngine.Epoll"/> (our own epoll threads; an idle
    /// connection keeps no .NET async receive, its event args and operation: ~0.5 KB), <see cref="Transport.IoEngine.Sockets"/>
    /// (a zero-byte <c>ReceiveAsync</c>), or <see cref="Transport.IoEngine.Auto"/>: epoll on Linux, sockets elsewhere.
    /// </summary>
    public IoEngine IoEngine { get; set; } = IoEngine.Auto;

    /// <summary>The engine <see cref="IoEngine"/> stands for on this platform.</summary>
    public IoEngine ResolvedIoEngine => IoEngine == IoEngine.Auto ? (OperatingSystem.IsLinux() ? IoEngine.Epoll : IoEngine.Sockets) : IoEngine;

    /// <summary>How long a closing connection waits for the peer's close before dropping the socket.</summary>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Inbound silence after which the server sends a keepalive PING.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>Inbound silence after which the connection is closed ("idle timeout"). Zero disables.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(75);

    /// <summary>New connections accepted per second per listener (token bucket); beyond it accepts wait in the backlog. 0 = unlimited.</summary>
    public double AcceptRatePerSecond { get; set; } = 5000;

    /// <summary>Burst of <see cref="AcceptRatePerSecond"/>.</summary>
    public double AcceptBurst { get; set; } = 5000;

    /// <summary>Open connections one remote IP address may hold. 0 = unlimited.</summary>
    public int MaxConnectionsPerIp { get; set; }

    /// <summary>On shutdown: how long to wait for clients to be told and queues to flush.</summary>
    public TimeSpan DrainWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>On shutdown: DRAIN tells each client to reconnect after a random delay up to this (spreads the reconnect storm).</summary>
    public TimeSpan DrainReconnectSpread { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Node that DRAIN suggests clients reconnect to (empty: the same address).</summary>
    public string? DrainNodeHint { get; set; }

    public void Validate()
    {
        if (string.IsNullOrEmpty(WebSocket) && string.IsNullOrEmpty(Tcp) && string.IsNullOrEmpty(Unix))
        {
            throw new ArgumentException("At least one listener (WebSocket, Tcp or Unix) must be configured.");
        }

        if (!WebSocketPath.StartsWith('/'))
        {
            throw new ArgumentException($"WebSocketPath '{WebSocketPath}' must start with '/'.");
        }

        if (HandshakeTimeout <= TimeSpan.Zero || MaxHandshakeBytes < 512 || SendBufferBytes < 4096 || Backlog < 1)
        {
            throw new ArgumentException("HandshakeTimeout must be positive, MaxHandshakeBytes ≥ 512, SendBufferBytes ≥ 4096, Backlog ≥ 1.");
        }

        if (KeepAliveInterval <= TimeSpan.Zero || IdleTimeout < TimeSpan.Zero || (IdleTimeout > TimeSpan.Zero && IdleTimeout <= KeepAliveInterval))
        {
            throw new ArgumentException("KeepAliveInterval must be positive and IdleTimeout 0 (off) or longer than KeepAliveInterval.");
        }

        if (AcceptRatePerSecond < 0 || AcceptBurst < 0 || MaxConnectionsPerIp < 0 || DrainWindow < TimeSpan.Zero || DrainReconnectSpread < TimeSpan.Zero)
        {
            throw new ArgumentException("AcceptRatePerSecond, AcceptBurst, MaxConnectionsPerIp, DrainWindow and DrainReconnectSpread must be ≥ 0.");
        }

        if (!Enum.IsDefined(IoEngine))
        {
            throw new ArgumentException($"IoEngine '{IoEngine}' is not one of Auto, Epoll, Sockets.");
        }

        if (IoEngine == IoEngine.Epoll && !OperatingSystem.IsLinux())
        {
            throw new ArgumentException("IoEngine Epoll needs Linux: use Auto or Sockets.");
        }

        foreach (var (name, value) in new[] { ("WebSocket", WebSocket), ("Tcp", Tcp) })
        {
            if (!string.IsNullOrEmpty(value))
            {
                _ = Endpoints.ParseIp(value, name);
            }
        }
    }
}
