using System.Text;
using FastRelay.Sidecar.Models;
using FastRelay.Sidecar.Models.OpenAi;

namespace FastRelay.Sidecar.Tests;

public sealed class ServerSentEventReaderTests
{
    private static async Task<List<string>> ReadAllAsync(string body, int pieceSize, int maxEventBytes = 1 << 20)
    {
        await using var events = new ServerSentEventReader(new PiecewiseStream(Encoding.UTF8.GetBytes(body), pieceSize), maxEventBytes);
        var result = new List<string>();
        while (await events.ReadEventAsync(CancellationToken.None))
        {
            result.Add((events.EventType is null ? "" : events.EventType + "|") + Encoding.UTF8.GetString(events.Data));
        }

        return result;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task Events_are_read_alike_whatever_the_network_splits(int pieceSize)
    {
        const string body = ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: note\rdata: first\rdata: second\r\rid: 7\nretry: 100\ndata:no-space\n\ndata: [DONE]\n\n";

        List<string> events = await ReadAllAsync(body, pieceSize);

        Assert.Equal(["{\"a\":1}", "note|first\nsecond", "no-space", "[DONE]"], events);
    }

    [Fact]
    public async Task Events_already_received_are_delivered_without_waiting_for_more_bytes()
    {
        // Two events arrive in one read and the server then goes quiet: both must come out before the next read.
        var pipe = new System.IO.Pipelines.Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes("data: one\n\ndata: two\n\n"));
        await using var events = new ServerSentEventReader(pipe.Reader.AsStream());
        var read = new List<string>();

        for (int i = 0; i < 2; i++)
        {
            Assert.True(await events.ReadEventAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
            read.Add(Encoding.UTF8.GetString(events.Data));
        }

        Assert.Equal(["one", "two"], read);
        await pipe.Writer.CompleteAsync();
    }

    [Fact]
    public async Task An_event_without_its_blank_line_at_the_end_of_the_body_is_still_delivered()
    {
        List<string> events = await ReadAllAsync("data: one\n\ndata: [DONE]", pieceSize: 3);

        Assert.Equal(["one", "[DONE]"], events);
    }

    [Fact]
    public async Task Comments_and_empty_events_alone_yield_nothing()
    {
        Assert.Empty(await ReadAllAsync(": ping\n\n\n\n: ping\n\n", pieceSize: 5));
    }

    [Fact]
    public async Task An_event_larger_than_the_limit_is_a_permanent_error()
    {
        string body = "data: " + new string('x', 300) + "\n\n";

        var ex = await Assert.ThrowsAsync<ModelException>(() => ReadAllAsync(body, pieceSize: 64, maxEventBytes: 128));

        Assert.Equal(ModelFailureKind.Permanent, ex.Kind);
        Assert.Contains("larger than 128 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_line_without_an_end_longer_than_the_limit_is_refused_before_the_body_ends()
    {
        // An endless line must not be buffered without bound: the reader gives up once it passes the limit.
        string body = "data: " + new string('x', 10_000);

        var ex = await Assert.ThrowsAsync<ModelException>(() => ReadAllAsync(body + body, pieceSize: 512, maxEventBytes: 1024));

        Assert.Equal(ModelFailureKind.Permanent, ex.Kind);
    }

    /// <summary>Returns at most <c>pieceSize</c> bytes per read, like a network that splits frames anywhere.</summary>
    private sealed class PiecewiseStream(byte[] data, int pieceSize) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(Math.Min(pieceSize, buffer.Length), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
