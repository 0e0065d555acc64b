using System.Net;
using System.Net.Sockets;
using System.Text;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// A client socket with a receive buffer and reads that wait at most <see cref="ReadTimeout"/> (never a sleep):
/// the base of the raw WebSocket and the length-prefixed test clients.
/// </summary>
internal abstract class SocketClient : IAsyncDisposable
{
    /// <summary>How long any read waits for the server before the test fails.</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    private readonly Socket _socket;
    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    protected SocketClient(Socket socket) => _socket = socket;

    /// <summary>Connects over TCP; a non-zero <paramref name="receiveBufferBytes"/> sets SO_RCVBUF before connecting.</summary>
    protected static async Task<Socket> ConnectTcpSocketAsync(IPEndPoint endPoint, int receiveBufferBytes = 0)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferBytes > 0)
        {
            socket.ReceiveBufferSize = receiveBufferBytes;
        }

        try
        {
            await socket.ConnectAsync(endPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    protected static async Task<Socket> ConnectUnixSocketAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Bytes received and not yet consumed.</summary>
    protected int Buffered => _end - _start;

    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes, SocketFlags.None);
            bytes = bytes[sent..];
        }
    }

    public Task SendRawAsync(string latin1) => SendRawAsync(Encoding.Latin1.GetBytes(latin1));

    /// <summary>Reads exactly <paramref name="count"/> bytes; fails on end of stream or timeout.</summary>
    public async Task<byte[]> ReadExactAsync(int count, string what)
    {
        while (Buffered < count)
        {
            if (!await FillAsync(count - Buffered, what))
            {
                throw new Xunit.Sdk.XunitException($"The server closed the connection while the test waited for {what} ({Buffered} of {count} bytes received).");
            }
        }

        byte[] result = _buffer.AsSpan(_start, count).ToArray();
        _start += count;
        return result;
    }

    /// <summary>Reads up to and including <paramref name="delimiter"/>.</summary>
    public async Task<byte[]> ReadThroughAsync(byte[] delimiter, string what, int max = 64 * 1024)
    {
        int searched = 0;
        while (true)
        {
            int found = _buffer.AsSpan(_start + searched, Buffered - searched).IndexOf(delimiter);
            if (found >= 0)
            {
                return await ReadExactAsync(searched + found + delimiter.Length, what);
            }

            searched = Math.Max(0, Buffered - delimiter.Length + 1);
            if (Buffered > max)
            {
                throw new Xunit.Sdk.XunitException($"No end of {what} within {max} bytes.");
            }

            if (!await FillAsync(1, what))
            {
                string got = Encoding.Latin1.GetString(_buffer, _start, Buffered);
                throw new Xunit.Sdk.XunitException($"The server closed the connection before the end of {what}; received: \"{got}\"");
            }
        }
    }

    /// <summary>
    /// Asserts that the server closes the connection gracefully (FIN, not a reset) without sending anything more,
    /// within <paramref name="within"/> (default <see cref="ReadTimeout"/>).
    /// </summary>
    public async Task ExpectEndOfStreamAsync(TimeSpan? within = null)
    {
        if (Buffered > 0)
        {
            throw new Xunit.Sdk.XunitException($"Expected the server to close the connection, but {Buffered} more bytes arrived: {Convert.ToHexString(_buffer, _start, Math.Min(Buffered, 64))}");
        }

        if (await FillAsync(1, "the end of the stream", within ?? ReadTimeout))
        {
            throw new Xunit.Sdk.XunitException($"Expected the server to close the connection, but {Buffered} more bytes arrived: {Convert.ToHexString(_buffer, _start, Math.Min(Buffered, 64))}");
        }
    }

    /// <summary>Receives at least one byte; false at end of stream. A reset fails the test: the relay closes gracefully.</summary>
    private async Task<bool> FillAsync(int wanted, string what, TimeSpan? timeout = null)
    {
        if (_start > 0 && _start == _end)
        {
            _start = _end = 0;
        }

        if (_buffer.Length - _end < wanted)
        {
            var next = new byte[Math.Max(_buffer.Length * 2, Buffered + wanted)];
            _buffer.AsSpan(_start, Buffered).CopyTo(next);
            _end = Buffered;
            _start = 0;
            _buffer = next;
        }

        var limit = timeout ?? ReadTimeout;
        using var cts = new CancellationTokenSource(limit);
        int received;
        try
        {
            received = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cts.Token);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new Xunit.Sdk.XunitException($"Nothing received from the server within {limit.TotalSeconds:0.###} s while waiting for {what}.");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            throw new Xunit.Sdk.XunitException($"The server reset the connection (RST) while the test waited for {what}; the relay should close gracefully.");
        }

        _end += received;
        return received > 0;
    }

    /// <summary>Half-closes our sending side (FIN), as a client does after a close handshake.</summary>
    public void ShutdownSend()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
    }

    public virtual ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
