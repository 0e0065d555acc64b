using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastRelay.Protocol;
using MessagePack;

namespace FastRelay.LoadGen.Measurement;

/// <summary>One <c>$sys.stats</c> event, stamped with this process's Stopwatch when it arrived.</summary>
internal readonly record struct StatsSample(long ReceivedTicks, long Delivered, long GcAllocatedBytes, long Gen0, long Gen1, long Gen2)
{
    /// <summary>Managed heap when the sample was taken, garbage not yet collected included (0 from older servers).</summary>
    public long HeapBytes { get; init; }

    /// <summary>Heap size as the last GC left it.</summary>
    public long LastGcHeapBytes { get; init; }

    /// <summary>Free space inside the heap as the last GC left it.</summary>
    public long LastGcFragmentedBytes { get; init; }

    /// <summary>Memory the GC had committed at the last GC.</summary>
    public long CommittedBytes { get; init; }

    /// <summary>Number of the last GC (0: none yet, or an older server).</summary>
    public long GcIndex { get; init; }
}

/// <summary>
/// The server's own view, for --diagnostics: one raw-TCP client subscribed to <c>$sys.stats</c> (the server is
/// started with a 1 s stats interval), keeping every sample. Two samples inside the measured window give the
/// managed bytes the server allocated per delivery it counted — a cross-check of the EventPipe figures.
/// </summary>
internal sealed class StatsWatcher : IAsyncDisposable
{
    private const ulong HelloRequestId = 1;
    private const ulong SubscribeRequestId = 2;
    private const int MaxBodyBytes = 1 << 20;

    private readonly Socket _socket;
    private readonly List<StatsSample> _samples = [];
    private readonly byte[] _buffer = new byte[256 * 1024];
    private int _start;
    private int _end;
    private Task? _loop;

    private StatsWatcher(Socket socket) => _socket = socket;

    public static async Task<StatsWatcher> StartAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var watcher = new StatsWatcher(socket);
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
            await watcher.SendAsync(new Envelope(FrameType.Hello).WithRequestId(HelloRequestId).WithVersion(ProtocolLimits.Version).WithClientId("loadgen-stats"), cancellationToken).ConfigureAwait(false);
            var welcome = await watcher.ReadEnvelopeAsync(cancellationToken).ConfigureAwait(false);
            if (welcome.Type != FrameType.Welcome)
            {
                throw new InvalidOperationException($"$sys.stats watcher: expected WELCOME, got {welcome.Type}");
            }

            await watcher.SendAsync(new Envelope(FrameType.Sub).WithRequestId(SubscribeRequestId).WithTopic("$sys.stats"), cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var reply = await watcher.ReadEnvelopeAsync(cancellationToken).ConfigureAwait(false);
                if (reply.Type == FrameType.Ack && reply.RequestId == SubscribeRequestId)
                {
                    break;
                }

                if (reply.Type == FrameType.Error)
                {
                    throw new InvalidOperationException($"$sys.stats subscribe refused: {reply.ErrorCode} {System.Text.Encoding.UTF8.GetString(reply.Reason.Span)}");
                }

                watcher.Record(in reply);
            }

            watcher._loop = watcher.ReadLoopAsync();
            return watcher;
        }
        catch
        {
            await watcher.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The first sample received at or after <paramref name="fromTicks"/> and the last at or before <paramref name="toTicks"/>.</summary>
    public (StatsSample First, StatsSample Last)? Within(long fromTicks, long toTicks)
    {
        lock (_samples)
        {
            var inside = _samples.Where(s => s.ReceivedTicks >= fromTicks && s.ReceivedTicks <= toTicks).ToList();
            return inside.Count >= 2 ? (inside[0], inside[^1]) : null;
        }
    }

    /// <summary>The first sample that arrives after <paramref name="afterTicks"/> (the server sends one per stats interval).</summary>
    public async Task<StatsSample?> NextAsync(long afterTicks, TimeSpan timeout)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            lock (_samples)
            {
                foreach (var sample in _samples)
                {
                    if (sample.ReceivedTicks > afterTicks)
                    {
                        return sample;
                    }
                }
            }

            await Task.Delay(50).ConfigureAwait(false);
        }

        return null;
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                var envelope = await ReadEnvelopeAsync(CancellationToken.None).ConfigureAwait(false);
                Record(in envelope);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            // closed at the end of the run
        }
    }

    private void Record(in Envelope envelope)
    {
        if (envelope.Type != FrameType.Event || envelope.Payload.IsEmpty)
        {
            return;
        }

        long ticks = Stopwatch.GetTimestamp();
        long delivered = 0, allocated = 0, gen0 = 0, gen1 = 0, gen2 = 0, heap = 0, lastHeap = 0, fragmented = 0, committed = 0, gcIndex = 0;
        var reader = new MessagePackReader(envelope.Payload);
        int fields = reader.ReadMapHeader();
        for (int i = 0; i < fields; i++)
        {
            string? key = reader.ReadString();
            if (reader.NextMessagePackType != MessagePackType.Integer)
            {
                reader.Skip();
                continue;
            }

            long value = reader.ReadInt64();
            switch (key)
            {
                case "delivered": delivered = value; break;
                case "gc_allocated_bytes": allocated = value; break;
                case "gc_gen0": gen0 = value; break;
                case "gc_gen1": gen1 = value; break;
                case "gc_gen2": gen2 = value; break;
                case "gc_heap_bytes": heap = value; break;
                case "gc_last_heap_bytes": lastHeap = value; break;
                case "gc_last_fragmented_bytes": fragmented = value; break;
                case "gc_committed_bytes": committed = value; break;
                case "gc_index": gcIndex = value; break;
            }
        }

        lock (_samples)
        {
            _samples.Add(new StatsSample(ticks, delivered, allocated, gen0, gen1, gen2)
            {
                HeapBytes = heap,
                LastGcHeapBytes = lastHeap,
                LastGcFragmentedBytes = fragmented,
                CommittedBytes = committed,
                GcIndex = gcIndex,
            });
        }
    }

    private async Task SendAsync(Envelope envelope, CancellationToken cancellationToken)
    {
        var body = new ArrayBufferWriter<byte>(256);
        EnvelopeCodec.Encode(body, in envelope);
        byte[] frame = new byte[RawFraming.HeaderSize + body.WrittenCount];
        RawFraming.WriteHeader(frame, body.WrittenCount);
        body.WrittenSpan.CopyTo(frame.AsSpan(RawFraming.HeaderSize));
        await _socket.SendAsync(frame, SocketFlags.None, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Next frame, decoded; the body is copied out so the envelope outlives the receive buffer.</summary>
    private async Task<Envelope> ReadEnvelopeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int available = _end - _start;
            if (available >= RawFraming.HeaderSize)
            {
                uint length = BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_start));
                if (length == 0 || length > MaxBodyBytes)
                {
                    throw new InvalidOperationException($"$sys.stats watcher: bad length prefix {length}");
                }

                if (available - RawFraming.HeaderSize >= length)
                {
                    byte[] body = _buffer.AsSpan(_start + RawFraming.HeaderSize, (int)length).ToArray();
                    _start += RawFraming.HeaderSize + (int)length;
                    var error = EnvelopeCodec.TryDecode(body, out var envelope, out var field);
                    if (error != DecodeError.None)
                    {
                        throw new InvalidOperationException($"$sys.stats watcher: undecodable envelope: {error} at {field}");
                    }

                    return envelope;
                }
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            int n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("$sys.stats watcher: the server closed the connection");
            }

            _end += n;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }
    }
}
