using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// TCP or Unix-socket transport with raw framing. Reads go through a PipeReader with zero-byte reads (an idle client
/// holds no receive buffer); sends are gathered into one pooled batch buffer and written with one call per flush.
/// </summary>
internal sealed class RawSocketTransport : IClientTransport
{
    /// <summary>Largest batch gathered before a write; larger envelopes are written on their own.</summary>
    private const int BatchBytes = 64 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly int _maxMessageBytes;
    private byte[]? _batch;
    private int _batchLength;
    private byte[] _joinBuffer = [];

    private RawSocketTransport(Socket socket, int maxMessageBytes)
    {
        _socket = socket;
        _maxMessageBytes = maxMessageBytes;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true, useZeroByteReads: true));
    }

    public static async Task<RawSocketTransport> ConnectTcpAsync(string host, int port, int maxMessageBytes, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }; // batching is ours, not Nagle's
        try
        {
            await socket.ConnectAsync(host, port, ct).ConfigureAwait(false);
            return new RawSocketTransport(socket, maxMessageBytes);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static async Task<RawSocketTransport> ConnectUnixAsync(string path, int maxMessageBytes, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
            return new RawSocketTransport(socket, maxMessageBytes);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct)
    {
        int needed = RawFraming.HeaderSize + envelope.Length;
        _batch ??= ArrayPool<byte>.Shared.Rent(BatchBytes);
        if (needed > _batch.Length - _batchLength)
        {
            return SendSlowAsync(envelope, ct);
        }

        Append(envelope.Span);
        return ValueTask.CompletedTask;
    }

    private void Append(ReadOnlySpan<byte> envelope)
    {
        var target = _batch.AsSpan(_batchLength);
        RawFraming.WriteHeader(target, envelope.Length);
        envelope.CopyTo(target[RawFraming.HeaderSize..]);
        _batchLength += RawFraming.HeaderSize + envelope.Length;
    }

    private async ValueTask SendSlowAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct)
    {
        await FlushAsync(ct).ConfigureAwait(false);
        _batch ??= ArrayPool<byte>.Shared.Rent(BatchBytes);
        if (RawFraming.HeaderSize + envelope.Length <= _batch.Length)
        {
            Append(envelope.Span);
            return;
        }

        RawFraming.WriteHeader(_batch, envelope.Length);
        await _stream.WriteAsync(_batch.AsMemory(0, RawFraming.HeaderSize), ct).ConfigureAwait(false);
        await _stream.WriteAsync(envelope, ct).ConfigureAwait(false);
    }

    public async ValueTask FlushAsync(CancellationToken ct)
    {
        if (_batch is null)
        {
            return;
        }

        if (_batchLength > 0)
        {
            await _stream.WriteAsync(_batch.AsMemory(0, _batchLength), ct).ConfigureAwait(false);
            _batchLength = 0;
        }

        // Between bursts the connection holds no send buffer.
        ArrayPool<byte>.Shared.Return(_batch);
        _batch = null;
    }

    public async Task<string?> ReceiveAsync(IEnvelopeReceiver receiver, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (true)
                    {
                        var status = RawFraming.TryRead(ref buffer, _maxMessageBytes, out var body, out uint declared);
                        if (status == RawFrameStatus.Incomplete)
                        {
                            break;
                        }

                        if (status == RawFrameStatus.TooLarge)
                        {
                            throw new FastRelayConnectionException(ErrorCode.TooLarge,
                                $"the server sent a {declared}-byte envelope, over MaxMessageBytes ({_maxMessageBytes})");
                        }

                        if (status == RawFrameStatus.Empty)
                        {
                            throw new FastRelayConnectionException(ErrorCode.BadFrame, "the server sent a zero-length frame");
                        }

                        receiver.OnEnvelope(body.IsSingleSegment ? body.First : Join(body));
                    }

                    if (result.IsCompleted)
                    {
                        if (!buffer.IsEmpty)
                        {
                            throw new FastRelayConnectionException(ErrorCode.None, "the connection ended in the middle of a frame");
                        }

                        return null;
                    }
                }
                finally
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                }
            }
        }
        finally
        {
            await _reader.CompleteAsync().ConfigureAwait(false);
            if (_joinBuffer.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_joinBuffer);
                _joinBuffer = [];
            }
        }
    }

    /// <summary>Copies a frame that spans pipe segments into one contiguous buffer (the codec reads contiguous memory).</summary>
    private ReadOnlyMemory<byte> Join(in ReadOnlySequence<byte> body)
    {
        int length = (int)body.Length;
        if (_joinBuffer.Length < length)
        {
            if (_joinBuffer.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_joinBuffer);
            }

            _joinBuffer = ArrayPool<byte>.Shared.Rent(length);
        }

        body.CopyTo(_joinBuffer);
        return _joinBuffer.AsMemory(0, length);
    }

    public ValueTask CloseAsync(CancellationToken ct)
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone: nothing to close gracefully.
        }

        return ValueTask.CompletedTask;
    }

    public void Abort() => _socket.Dispose();

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync().ConfigureAwait(false);
        if (_batch is not null)
        {
            ArrayPool<byte>.Shared.Return(_batch);
            _batch = null;
        }
    }
}
