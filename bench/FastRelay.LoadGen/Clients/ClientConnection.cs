using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FastRelay.LoadGen.Wire;

namespace FastRelay.LoadGen.Clients;

/// <summary>Receives the messages a <see cref="ClientConnection"/>'s receive loop parses, one receive at a time.</summary>
internal interface IInboundSink
{
    /// <summary>A receive completed at <paramref name="now"/> (Stopwatch timestamp); messages follow.</summary>
    void BeginBatch(long now);

    void OnInbound(in Inbound message);

    void EndBatch();

    /// <summary>The loop ended: the peer closed, the socket was disposed, or <paramref name="error"/>.</summary>
    void OnClosed(Exception? error);
}

/// <summary>
/// One simulated client's socket and its receive buffer. Setup reads go through <see cref="ReadInboundAsync"/>;
/// steady state is <see cref="RunReceiveLoopAsync"/>: one async receive into a large buffer, every whole
/// message parsed in place, nothing allocated per message.
/// </summary>
internal sealed class ClientConnection : IDisposable
{
    private const int IpProtoIp = 0;
    private const int IpBindAddressNoPort = 24; // Linux: pick the port at connect(), so many source IPs share the range
    private const int MaxBufferBytes = 64 << 20;

    private byte[] _buffer;
    private int _start;
    private int _end;

    private ClientConnection(Socket socket, WireProtocol wire, int bufferBytes)
    {
        Socket = socket;
        Wire = wire;
        _buffer = new byte[bufferBytes];
    }

    public Socket Socket { get; }

    public WireProtocol Wire { get; }

    public static async Task<ClientConnection> ConnectAsync(IPEndPoint endPoint, IPAddress? source, WireProtocol wire, int bufferBytes, CancellationToken cancellationToken, int kernelReceiveBufferBytes = 0)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (kernelReceiveBufferBytes > 0)
            {
                // Before connect, so the advertised window stays small (slow-consumer scenario).
                socket.ReceiveBufferSize = kernelReceiveBufferBytes;
            }

            if (source is not null)
            {
                socket.SetRawSocketOption(IpProtoIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
                socket.Bind(new IPEndPoint(source, 0));
            }

            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
            return new ClientConnection(socket, wire, bufferBytes);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            int n = await Socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            bytes = bytes[n..];
        }
    }

    /// <summary>Blocking send of all of <paramref name="bytes"/> (the publisher thread).</summary>
    public void Send(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int n = Socket.Send(bytes, SocketFlags.None);
            bytes = bytes[n..];
        }
    }

    /// <summary>Setup path: the next whole message.</summary>
    public async Task<Inbound> ReadInboundAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_end > _start && Wire.TryRead(_buffer, _start, _end - _start, out int consumed, out var message))
            {
                Consume(consumed);
                return message;
            }

            await FillAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Setup path: an HTTP response head up to and including the blank line; bytes after it stay buffered.</summary>
    public async Task<string> ReadHttpHeadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int end = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                string head = Encoding.ASCII.GetString(_buffer, _start, end + 4);
                Consume(end + 4);
                return head;
            }

            if (_end - _start > 16 * 1024)
            {
                throw new WireException("HTTP response head larger than 16 KiB");
            }

            await FillAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        MakeRoom();
        int n = await Socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        if (n == 0)
        {
            throw new WireException("connection closed by the server");
        }

        _end += n;
    }

    /// <summary>Receives until the socket closes, handing every message to <paramref name="sink"/>. Never throws.</summary>
    public async Task RunReceiveLoopAsync(IInboundSink sink)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                if (_end > _start)
                {
                    Dispatch(sink);
                }

                MakeRoom();
                int n = await Socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                _end += n;
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // closed under us: the run is ending (or the server dropped us; the sink decides which)
        }
        catch (Exception ex)
        {
            error = ex;
        }

        sink.OnClosed(error);
    }

    private void Dispatch(IInboundSink sink)
    {
        sink.BeginBatch(Stopwatch.GetTimestamp());
        var wire = Wire;
        byte[] buffer = _buffer;
        int start = _start;
        int end = _end;
        while (start < end && wire.TryRead(buffer, start, end - start, out int consumed, out var message))
        {
            start += consumed;
            sink.OnInbound(in message);
        }

        _start = start;
        if (_start == _end)
        {
            _start = _end = 0;
        }

        sink.EndBatch();
    }

    private void Consume(int count)
    {
        _start += count;
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    /// <summary>Keeps at least a quarter of the buffer free for the next receive: compact, or grow for a large message.</summary>
    private void MakeRoom()
    {
        int free = _buffer.Length - _end;
        if (free >= _buffer.Length / 4)
        {
            return;
        }

        int pending = _end - _start;
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
            _start = 0;
            _end = pending;
        }

        if (_buffer.Length - _end < _buffer.Length / 4)
        {
            if (_buffer.Length >= MaxBufferBytes)
            {
                throw new WireException($"a message larger than {MaxBufferBytes} bytes");
            }

            Array.Resize(ref _buffer, _buffer.Length * 2);
        }
    }

    public void Dispose() => Socket.Dispose();
}
