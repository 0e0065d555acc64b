using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastRelay.Core.Sessions;
using FastRelay.Transport.Connections;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport;

/// <summary>Which framing a listener speaks.</summary>
public enum ListenerKind : byte
{
    WebSocket,
    Tcp,
    Unix,
}

/// <summary>Accepts sockets on one endpoint and runs a connection for each.</summary>
internal sealed class SocketListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly TransportContext _context;
    private readonly ConcurrentDictionary<Connection, byte> _connections;
    private readonly CancellationTokenSource _stop = new();
    private Task? _acceptLoop;

    public SocketListener(ListenerKind kind, EndPoint endPoint, TransportContext context, ConcurrentDictionary<Connection, byte> connections)
    {
        Kind = kind;
        _context = context;
        _connections = connections;
        if (endPoint is UnixDomainSocketEndPoint unix)
        {
            string path = unix.ToString();
            if (File.Exists(path))
            {
                File.Delete(path); // a stale socket file from an earlier run
            }

            _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }
        else
        {
            _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        }

        _socket.Bind(endPoint);
        _socket.Listen(context.Options.Backlog);
        EndPoint = _socket.LocalEndPoint!;
    }

    public ListenerKind Kind { get; }

    /// <summary>The bound endpoint (with the real port when 0 was asked for).</summary>
    public EndPoint EndPoint { get; }

    public void Start() => _acceptLoop = AcceptLoopAsync();

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                // EMFILE and friends: keep accepting; the condition is usually transient.
                _context.Logger.LogWarning("Accept on {EndPoint} failed: {Error}", EndPoint, ex.SocketErrorCode);
                continue;
            }

            _ = RunConnectionAsync(socket);
        }
    }

    private async Task RunConnectionAsync(Socket socket)
    {
        Connection connection;
        try
        {
            if (Kind != ListenerKind.Unix)
            {
                socket.NoDelay = true;
            }

            string remote = socket.RemoteEndPoint?.ToString() ?? "unix";
            var session = _context.Engine.CreateSession(remote, Kind switch
            {
                ListenerKind.WebSocket => "ws",
                ListenerKind.Tcp => "tcp",
                _ => "unix",
            });
            connection = Kind == ListenerKind.WebSocket
                ? new WebSocketConnection(socket, session, _context)
                : new RawConnection(socket, session, _context);
        }
        catch (Exception ex)
        {
            _context.Logger.LogWarning(ex, "Could not set up a connection on {EndPoint}", EndPoint);
            socket.Dispose();
            return;
        }

        _connections.TryAdd(connection, 0);
        // The deadline covers the WebSocket upgrade and the HELLO: a silent socket cannot hold a slot forever.
        using var deadline = new Timer(
            static state =>
            {
                var c = (Connection)state!;
                if (c.Session.State == SessionState.AwaitingHello)
                {
                    c.Abort(SessionCloseKind.PolicyViolation, "handshake timeout: no HELLO");
                }
            },
            connection,
            _context.Options.HandshakeTimeout,
            Timeout.InfiniteTimeSpan);
        try
        {
            await connection.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            _connections.TryRemove(connection, out _);
        }
    }

    /// <summary>Stops accepting; existing connections are left to the server.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _socket.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        if (Kind == ListenerKind.Unix && EndPoint.ToString() is { } path && File.Exists(path))
        {
            File.Delete(path);
        }

        _stop.Dispose();
    }
}
