using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastRelay.Core;
using FastRelay.Core.Sessions;
using FastRelay.Transport.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FastRelay.Transport;

/// <summary>
/// The relay's network side: WebSocket, raw TCP and Unix-socket listeners feeding one <see cref="RelayEngine"/>.
/// </summary>
public sealed class RelayServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<Connection, byte> _connections = new();
    private readonly List<SocketListener> _listeners = [];
    private readonly ILogger _logger;
    private TransportContext _context;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HandshakeDeadlines _handshakes;
    private Task? _idleLoop;
    private Task? _handshakeLoop;
    private int _stopped;

    public RelayServer(RelayEngine engine, TransportOptions options, ILogger? logger = null)
    {
        options.Validate();
        Engine = engine;
        Options = options;
        _context = new TransportContext(engine, options, logger ?? NullLogger.Instance);
        _logger = logger ?? NullLogger.Instance;
        _handshakes = new HandshakeDeadlines(options.HandshakeTimeout);
    }

    public RelayEngine Engine { get; }

    public TransportOptions Options { get; }

    /// <summary>Accepts that waited for the accept-rate limiter, over all listeners.</summary>
    public long AcceptsDelayed => _listeners.Sum(l => l.AcceptsDelayed);

    /// <summary>Connections refused by the per-IP limit, over all listeners.</summary>
    public long RefusedPerIp => _listeners.Sum(l => l.RefusedPerIp);

    /// <summary>The sessions of the open connections (diagnostics, tests).</summary>
    public IEnumerable<FastRelay.Core.Sessions.Session> Sessions => _connections.Keys.Select(c => c.Session);

    /// <summary>Open connections (any state).</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>The open connections (tests look at one connection's receive buffer and completion).</summary>
    internal IEnumerable<Connections.Connection> Connections => _connections.Keys;

    /// <summary>Inline writes by shard threads on the open connections (see <see cref="TransportOptions.InlineSends"/>).</summary>
    public long InlineWrites => _connections.Keys.Sum(c => c.InlineWrites);

    /// <summary>Inline writes on the open connections that handed the rest to the connection's writer.</summary>
    public long InlineHandOffs => _connections.Keys.Sum(c => c.InlineHandOffs);

    /// <summary>Bound WebSocket endpoint, if enabled.</summary>
    public IPEndPoint? WebSocketEndPoint => Find(ListenerKind.WebSocket) as IPEndPoint;

    /// <summary>Bound raw TCP endpoint, if enabled.</summary>
    public IPEndPoint? TcpEndPoint => Find(ListenerKind.Tcp) as IPEndPoint;

    /// <summary>Bound Unix socket path, if enabled.</summary>
    public string? UnixPath => Find(ListenerKind.Unix)?.ToString();

    /// <summary>ws://host:port/path of the WebSocket listener.</summary>
    public Uri? WebSocketUri => WebSocketEndPoint is { } ep ? new Uri($"ws://{Format(ep)}{Options.WebSocketPath}") : null;

    /// <summary>tcp://host:port of the raw TCP listener.</summary>
    public Uri? TcpUri => TcpEndPoint is { } ep ? new Uri($"tcp://{Format(ep)}") : null;

    /// <summary>unix:///path of the Unix listener.</summary>
    public Uri? UnixUri => UnixPath is { } path ? new Uri($"unix://{path}") : null;

    /// <summary>Sockets registered with the epoll engine now (0 with the sockets engine).</summary>
    internal int EpollRegistrations => _context.Epoll?.RegisteredCount ?? 0;

    /// <summary>Binds every configured listener and starts accepting.</summary>
    public void Start()
    {
        if (Options.ResolvedIoEngine == IoEngine.Epoll)
        {
            _context = _context with { Epoll = new Epoll.EpollEngine(_logger) };
        }

        try
        {
            if (!string.IsNullOrEmpty(Options.WebSocket))
            {
                Add(ListenerKind.WebSocket, Endpoints.ParseIp(Options.WebSocket, "WebSocket"));
            }

            if (!string.IsNullOrEmpty(Options.Tcp))
            {
                Add(ListenerKind.Tcp, Endpoints.ParseIp(Options.Tcp, "Tcp"));
            }

            if (!string.IsNullOrEmpty(Options.Unix))
            {
                Add(ListenerKind.Unix, new UnixDomainSocketEndPoint(Options.Unix));
            }
        }
        catch (Exception ex)
        {
            // Nothing is left running: listeners bound so far and the I/O threads go with the failure.
            foreach (var listener in _listeners)
            {
                listener.DisposeAsync().AsTask().GetAwaiter().GetResult(); // not started: nothing to wait for
            }

            _listeners.Clear();
            _context.Epoll?.Dispose();
            if (ex is SocketException socketError)
            {
                throw new InvalidOperationException($"Could not bind a listener: {socketError.Message} ({socketError.SocketErrorCode}).", ex);
            }

            throw;
        }

        foreach (var listener in _listeners)
        {
            listener.Start();
            _context.Logger.LogInformation("Listening ({Kind}) on {EndPoint}", listener.Kind, listener.EndPoint);
        }

        _idleLoop = IdleLoopAsync(_stopping.Token);
        _handshakeLoop = HandshakeLoopAsync(_stopping.Token);
    }

    /// <summary>Aborts connections that have not finished the handshake (upgrade and HELLO) in time.</summary>
    private async Task HandshakeLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_handshakes.Period);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                _handshakes.Sweep(Environment.TickCount64);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Once a second: keepalive PINGs for quiet connections, and closing the ones past the idle timeout.</summary>
    private async Task IdleLoopAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        long keepAlive = (long)Options.KeepAliveInterval.TotalMilliseconds;
        long idle = (long)Options.IdleTimeout.TotalMilliseconds;
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                long now = Environment.TickCount64;
                // Enumerating the dictionary itself takes no lock and copies nothing; `.Keys` would lock every bucket and
                // allocate an array of all connections once a second (40 KB/s at 5,000 connections).
                foreach (var (connection, _) in _connections)
                {
                    connection.CheckIdle(now, keepAlive, idle);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Graceful drain (deploys): stop accepting, tell every client to reconnect after a random delay up to
    /// <see cref="TransportOptions.DrainReconnectSpread"/> (spreading the reconnect storm), refuse new publishes,
    /// let the shards finish what they accepted, flush every outbox, then close. Bounded by
    /// <see cref="TransportOptions.DrainWindow"/>.
    /// </summary>
    public async Task DrainAsync(CancellationToken cancellationToken = default)
    {
        foreach (var listener in _listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        long spreadMs = (long)Options.DrainReconnectSpread.TotalMilliseconds;
        foreach (var connection in _connections.Keys)
        {
            connection.Session.Drain((uint)Random.Shared.NextInt64(0, spreadMs + 1), Options.DrainNodeHint);
        }

        _context.Logger.LogInformation("Draining {Connections} connections", _connections.Count);
        try
        {
            // Everything accepted before the DRAIN is fanned out to outboxes before they close.
            await Engine.QuiesceAsync().WaitAsync(Options.DrainWindow, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _context.Logger.LogWarning("Shards did not quiesce within the drain window");
        }

        await StopAsync(cancellationToken).ConfigureAwait(false);
    }

    private void Add(ListenerKind kind, EndPoint endPoint) => _listeners.Add(new SocketListener(kind, endPoint, _context, _connections, _handshakes));

    private EndPoint? Find(ListenerKind kind) => _listeners.FirstOrDefault(l => l.Kind == kind)?.EndPoint;

    private static string Format(IPEndPoint ep) => ep.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ep.Address}]:{ep.Port}" : $"{ep.Address}:{ep.Port}";

    /// <summary>Stops accepting, closes every connection (flushing queued frames, going-away close) and waits.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();
        foreach (var listener in _listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        if (_idleLoop is not null)
        {
            await _idleLoop.ConfigureAwait(false);
        }

        if (_handshakeLoop is not null)
        {
            await _handshakeLoop.ConfigureAwait(false);
        }

        foreach (var connection in _connections.Keys)
        {
            connection.Session.Close(SessionCloseKind.GoingAway, "server shutting down");
        }

        // Each connection flushes its queue, sends its close and waits for the peer, bounded by CloseTimeout;
        // whatever is still open after twice that is dropped.
        try
        {
            await Task.WhenAll(_connections.Keys.Select(c => c.Completion))
                .WaitAsync(Options.DrainWindow > Options.CloseTimeout * 2 ? Options.DrainWindow : Options.CloseTimeout * 2, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            foreach (var connection in _connections.Keys)
            {
                connection.Abort(SessionCloseKind.GoingAway, "server shutting down");
            }
        }
        finally
        {
            // Connections still winding down have had their sockets dropped (or will unregister from a stopped
            // loop, which is harmless): the I/O threads can go.
            _context.Epoll?.Dispose();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
