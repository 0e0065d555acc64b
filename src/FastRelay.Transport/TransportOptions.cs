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

    /// <summary>How long a closing connection waits for the peer's close before dropping the socket.</summary>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(2);

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

        foreach (var (name, value) in new[] { ("WebSocket", WebSocket), ("Tcp", Tcp) })
        {
            if (!string.IsNullOrEmpty(value))
            {
                _ = Endpoints.ParseIp(value, name);
            }
        }
    }
}
