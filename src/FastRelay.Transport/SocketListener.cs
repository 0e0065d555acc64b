using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastRelay.Core.FlowControl;
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
    private readonly HandshakeDeadlines _handshakes;
    private readonly CancellationTokenSource _stop = new();
    private readonly SharedTokenBucket _acceptRate;
    private readonly ConcurrentDictionary<IPAddress, int>? _perIp;
    private long _acceptsDelayed;
    private int _disposed;
    private long _refusedPerIp;
    private Task? _acceptLoop;

    public SocketListener(ListenerKind kind, EndPoint endPoint, TransportContext context, ConcurrentDictionary<Connection, byte> connections, HandshakeDeadlines handshakes)
    {
        _handshakes = handshakes;
        Kind = kind;
        _context = context;
        _connections = connections;
        _acceptRate = new SharedTokenBucket(context.Options.AcceptRatePerSecond, Math.Max(1, context.Options.AcceptBurst));
        _perIp = context.Options.MaxConnectionsPerIp > 0 ? new ConcurrentDictionary<IPAddress, int>() : null;
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

    /// <summary>Accepts that waited for the accept-rate limiter (a reconnection storm being absorbed).</summary>
    public long AcceptsDelayed => Volatile.Read(ref _acceptsDelayed);

    /// <summary>Connections refused because their IP address was at its limit.</summary>
    public long RefusedPerIp => Volatile.Read(ref _refusedPerIp);

    public void Start() => _acceptLoop = AcceptLoopAsync();

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                // Storm protection: past the accept rate, wait for a token; connections queue in the kernel
                // backlog and are taken at a steady rate instead of all handshakes landing at once.
                if (!_acceptRate.TryTake(System.Diagnostics.Stopwatch.GetTimestamp(), out uint waitMs))
                {
                    Interlocked.Increment(ref _acceptsDelayed);
                    await Task.Delay((int)waitMs, _stop.Token).ConfigureAwait(false);
                    continue;
                }

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

            Accept(socket);
        }
    }

    /// <summary>
    /// Sets up and starts a connection for an accepted socket, synchronously: the connection's own run method is
    /// the only async state machine it keeps (the listener is called back when it ends).
    /// </summary>
    private void Accept(Socket socket)
    {
        IPAddress? ip = null;
        if (_perIp is not null && (socket.RemoteEndPoint as IPEndPoint)?.Address is { } address)
        {
            ip = address;
            int count = _perIp.AddOrUpdate(ip, 1, static (_, n) => n + 1);
            if (count > _context.Options.MaxConnectionsPerIp)
            {
                Interlocked.Increment(ref _refusedPerIp);
                Release(ip);
                _ = RefuseAsync(socket);
                return;
            }
        }

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
            if (ip is not null)
            {
                Release(ip);
            }

            socket.Dispose();
            return;
        }

        connection.Listener = this;
        connection.CountedAddress = ip;
        _connections.TryAdd(connection, 0);
        // The deadline covers the WebSocket upgrade and the HELLO: a silent socket cannot hold a slot forever.
        _handshakes.Add(connection);
        connection.Start();
    }

    /// <summary>The connection has been torn down: forget it and give its address slot back.</summary>
    internal void OnConnectionEnded(Connection connection)
    {
        _connections.TryRemove(connection, out _);
        if (connection.CountedAddress is { } ip)
        {
            connection.CountedAddress = null;
            Release(ip);
        }
    }

    private void Release(IPAddress ip)
    {
        if (_perIp!.AddOrUpdate(ip, 0, static (_, n) => n - 1) <= 0)
        {
            _perIp.TryRemove(new KeyValuePair<IPAddress, int>(ip, 0));
        }
    }

    /// <summary>Over the per-IP limit: a clear answer in the listener's framing, then close.</summary>
    private async Task RefuseAsync(Socket socket)
    {
        const string reason = "too many connections from this address";
        try
        {
            byte[] response;
            if (Kind == ListenerKind.WebSocket)
            {
                response = System.Text.Encoding.ASCII.GetBytes(
                    $"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: {reason.Length}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{reason}");
            }
            else
            {
                var body = new System.Buffers.ArrayBufferWriter<byte>(128);
                FastRelay.Protocol.EnvelopeCodec.Encode(body, new FastRelay.Protocol.Envelope(FastRelay.Protocol.FrameType.Error).WithError(FastRelay.Protocol.ErrorCode.LimitExceeded, reason));
                response = new byte[4 + body.WrittenCount];
                FastRelay.Protocol.RawFraming.WriteHeader(response, body.WrittenCount);
                body.WrittenSpan.CopyTo(response.AsSpan(4));
            }

            await socket.SendAsync(response, SocketFlags.None).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }

    /// <summary>Stops accepting; existing connections are left to the server.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

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
