using System.Buffers;
using System.Threading.Channels;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests.Fakes;

/// <summary>One client connection on the fake server: what it sent, what it subscribed to, and a way to talk back.</summary>
internal sealed class FakeSession
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Channel<ReceivedFrame> _received = Channel.CreateUnbounded<ReceivedFrame>();
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public FakeSession(IFakeWire wire)
    {
        Wire = wire;
    }

    public IFakeWire Wire { get; }

    public string ClientId { get; set; } = "";

    public HashSet<string> Topics { get; } = [];

    /// <summary>Completes when the connection is over (client closed, dropped, or broken).</summary>
    public Task Ended => _ended.Task;

    internal void Record(ReceivedFrame frame) => _received.Writer.TryWrite(frame);

    internal void MarkEnded()
    {
        _received.Writer.TryComplete();
        _ended.TrySetResult();
    }

    /// <summary>The next frame of <paramref name="type"/> the client sent (earlier frames of other types are skipped).</summary>
    public async Task<ReceivedFrame> NextAsync(FrameType type)
    {
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        while (true)
        {
            var frame = await _received.Reader.ReadAsync(timeout.Token);
            if (frame.Type == type)
            {
                return frame;
            }
        }
    }

    /// <summary>The frames the client sent up to and including the next one of <paramref name="type"/>.</summary>
    public async Task<List<ReceivedFrame>> UntilAsync(FrameType type)
    {
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        var frames = new List<ReceivedFrame>();
        while (true)
        {
            var frame = await _received.Reader.ReadAsync(timeout.Token);
            frames.Add(frame);
            if (frame.Type == type)
            {
                return frames;
            }
        }
    }

    public async Task SendAsync(Envelope envelope)
    {
        var buffer = new ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(buffer, envelope);
        await _writeLock.WaitAsync();
        try
        {
            await Wire.WriteAsync(buffer.WrittenMemory, CancellationToken.None);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async Task SendRawAsync(byte[] bytes)
    {
        await _writeLock.WaitAsync();
        try
        {
            await Wire.WriteRawAsync(bytes, CancellationToken.None);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task SendEventAsync(string topic, ulong seq, byte[] payload, EventFlags flags = EventFlags.None, ulong epoch = 1) =>
        SendAsync(new Envelope(FrameType.Event).WithTopic(topic).WithEpoch(epoch).WithSeq(seq).WithClientId("publisher")
            .WithTimestamp(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000).WithFlags(flags).WithPayload(payload));

    /// <summary>Cuts the connection without a goodbye.</summary>
    public void Drop() => Wire.Abort();
}
