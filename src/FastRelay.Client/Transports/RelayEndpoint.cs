namespace FastRelay.Client;

/// <summary>Turns a relay URL into a connected transport: ws:// and wss://, tcp://host:port, unix:///path/to.sock.</summary>
internal static class RelayEndpoint
{
    public static Uri Parse(string url)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new ArgumentException($"'{url}' is not an absolute URL (expected ws://host:port/ws, tcp://host:port or unix:///path/to.sock).", nameof(url));
        }

        return uri;
    }

    /// <summary>Checks the URL before anything is opened, so a typo fails with an argument error, not a socket error.</summary>
    public static void Validate(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        switch (uri.Scheme)
        {
            case "ws" or "wss":
                return;
            case "tcp":
                if (string.IsNullOrEmpty(uri.Host) || uri.IsDefaultPort || uri.Port <= 0)
                {
                    throw new ArgumentException($"'{uri}': a tcp URL needs a host and a port (tcp://host:port).", nameof(uri));
                }

                return;
            case "unix":
                if (!string.IsNullOrEmpty(uri.Host) || UnixPath(uri).Length <= 1)
                {
                    throw new ArgumentException($"'{uri}': a unix URL takes an absolute socket path (unix:///path/to.sock).", nameof(uri));
                }

                return;
            default:
                throw new ArgumentException($"'{uri}': unsupported scheme '{uri.Scheme}' (use ws, wss, tcp or unix).", nameof(uri));
        }
    }

    public static async Task<IClientTransport> ConnectAsync(Uri uri, int maxMessageBytes, CancellationToken ct) => uri.Scheme switch
    {
        "ws" or "wss" => await WebSocketTransport.ConnectAsync(uri, maxMessageBytes, ct).ConfigureAwait(false),
        "tcp" => await RawSocketTransport.ConnectTcpAsync(uri.DnsSafeHost, uri.Port, maxMessageBytes, ct).ConfigureAwait(false),
        _ => await RawSocketTransport.ConnectUnixAsync(UnixPath(uri), maxMessageBytes, ct).ConfigureAwait(false),
    };

    private static string UnixPath(Uri uri) => Uri.UnescapeDataString(uri.AbsolutePath);
}
