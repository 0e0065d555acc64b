namespace FastRelay.Transport.WebSockets;

/// <summary>The parts of a validated upgrade request the server needs to route and answer it.</summary>
public readonly struct WebSocketUpgradeRequest
{
    private readonly string? _path;
    private readonly string? _queryString;
    private readonly string? _host;
    private readonly string? _key;

    internal WebSocketUpgradeRequest(string path, string queryString, string host, string key, string? origin, string? subProtocols)
    {
        _path = path;
        _queryString = queryString;
        _host = host;
        _key = key;
        Origin = origin;
        SubProtocols = subProtocols;
    }

    /// <summary>The request-target up to '?', as sent (not percent-decoded); starts with '/'.</summary>
    public string Path => _path ?? string.Empty;

    /// <summary>The request-target after '?', without it and as sent; empty when there is none.</summary>
    public string QueryString => _queryString ?? string.Empty;

    /// <summary>The Host header value.</summary>
    public string Host => _host ?? string.Empty;

    /// <summary>The Sec-WebSocket-Key header value, to pass to <see cref="WebSocketHandshake.WriteAccept"/>.</summary>
    public string Key => _key ?? string.Empty;

    /// <summary>The Origin header value (browsers always send it), or null.</summary>
    public string? Origin { get; }

    /// <summary>The Sec-WebSocket-Protocol values as one comma-separated list, or null when none were offered.</summary>
    public string? SubProtocols { get; }
}
