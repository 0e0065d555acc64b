using System.Buffers;
using System.Text;
using FastRelay.Client.Jobs;
using FastRelay.Protocol;
using MessagePack;

namespace FastRelay.Client.Tests;

public sealed class JobWireTests
{
    private static RelayEvent Event(byte[] payload, EventFlags flags, string? job = "job-1") =>
        new("replies.x", 1, 1, "sidecar", null, job, 0, flags, payload);

    [Fact]
    public void A_job_round_trips_with_and_without_its_optional_fields()
    {
        var full = new JobRequest("summarise: ünïcode ✓") { Id = "j-1", ReplyTopic = "replies.j-1" };
        Assert.True(JobWire.TryDecodeRequest(JobWire.EncodeRequest(full), out var decoded, out string? error), error);
        Assert.Equal(full, decoded);

        var bare = new JobRequest("hi");
        Assert.True(JobWire.TryDecodeRequest(JobWire.EncodeRequest(bare), out decoded, out error), error);
        Assert.Equal(bare, decoded);
    }

    [Fact]
    public void Unknown_keys_in_a_job_are_ignored()
    {
        byte[] payload = Map(w =>
        {
            w.WriteMapHeader(3);
            w.Write("priority");
            w.Write(7);
            w.Write("input");
            w.Write("text");
            w.Write(42); // a non-string key
            w.WriteArrayHeader(0);
        });

        Assert.True(JobWire.TryDecodeRequest(payload, out var job, out string? error), error);
        Assert.Equal("text", job.Input);
    }

    [Theory]
    [InlineData(new byte[] { 0xa3, 0x61, 0x62, 0x63 }, "a job is a MessagePack map")] // "abc"
    [InlineData(new byte[] { 0x81, 0xa5, 0x69, 0x6e, 0x70, 0x75, 0x74 }, "not valid MessagePack")] // map missing its value
    [InlineData(new byte[] { 0x80 }, "no \"input\"")]
    [InlineData(new byte[] { 0x81, 0xa5, 0x69, 0x6e, 0x70, 0x75, 0x74, 0x05 }, "\"input\" must be a string")]
    [InlineData(new byte[] { 0x80, 0x00 }, "bytes after its map")]
    public void A_payload_that_is_not_a_job_is_rejected_with_the_reason(byte[] payload, string reason)
    {
        Assert.False(JobWire.TryDecodeRequest(payload, out var job, out string? error));
        Assert.Null(job);
        Assert.Contains(reason, error);
    }

    [Fact]
    public void The_reply_topic_of_an_invalid_job_is_still_read_so_the_requester_can_be_told()
    {
        byte[] payload = Map(w =>
        {
            w.WriteMapHeader(1);
            w.Write("reply");
            w.Write("replies.r");
        });

        Assert.False(JobWire.TryDecodeRequest(payload, out _, out _, out string? reply));
        Assert.Equal("replies.r", reply);
    }

    [Fact]
    public void Reply_events_decode_by_their_flags_and_kind()
    {
        Assert.True(JobWire.TryDecodeReply(Event(Encoding.UTF8.GetBytes("Hel"), EventFlags.Partial | EventFlags.Coalesced), out var token, out _));
        Assert.Equal(new JobToken("job-1", "Hel", Coalesced: true), token);

        var restart = new JobRestarted("job-1", 2, "worker lost");
        Assert.True(JobWire.TryDecodeReply(Event(JobWire.EncodeRestart(restart), EventFlags.None), out var decodedRestart, out _));
        Assert.Equal(restart, decodedRestart);

        var result = new JobResult("job-1", "Hello")
        {
            Model = "openai:m", Attempts = 3, Degraded = true, Reason = "stalled", Error = "openai:m: no token for 2 s",
            FinishReason = null, Agent = "writer",
        };
        Assert.True(JobWire.TryDecodeReply(Event(JobWire.EncodeResult(result), EventFlags.Final | EventFlags.Degraded), out var decodedResult, out _));
        Assert.Equal(result, decodedResult);
    }

    [Fact]
    public void A_reply_event_that_is_not_of_the_job_protocol_is_reported()
    {
        Assert.False(JobWire.TryDecodeReply(Event([0xff, 0xfe], EventFlags.Partial), out _, out string? error));
        Assert.Contains("not UTF-8", error);

        Assert.False(JobWire.TryDecodeReply(Event(Map(w => { w.WriteMapHeader(1); w.Write("kind"); w.Write("other"); }), EventFlags.None), out _, out error));
        Assert.Contains("unknown reply event kind \"other\"", error);

        Assert.False(JobWire.TryDecodeReply(Event("plain"u8.ToArray(), EventFlags.Final), out _, out error));
        Assert.Contains("MessagePack map", error);
    }

    private delegate void WriteBody(ref MessagePackWriter writer);

    private static byte[] Map(Action<MessagePackWriterProxy> body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var proxy = new MessagePackWriterProxy(buffer);
        body(proxy);
        return proxy.Finish();
    }

    /// <summary>Collects writes for a lambda (MessagePackWriter is a ref struct).</summary>
    private sealed class MessagePackWriterProxy(ArrayBufferWriter<byte> buffer)
    {
        private readonly List<WriteBody> _steps = [];

        public void WriteMapHeader(int n) => _steps.Add((ref MessagePackWriter w) => w.WriteMapHeader(n));

        public void WriteArrayHeader(int n) => _steps.Add((ref MessagePackWriter w) => w.WriteArrayHeader(n));

        public void Write(string s) => _steps.Add((ref MessagePackWriter w) => w.Write(s));

        public void Write(int i) => _steps.Add((ref MessagePackWriter w) => w.Write(i));

        public byte[] Finish()
        {
            var writer = new MessagePackWriter(buffer);
            foreach (var step in _steps)
            {
                step(ref writer);
            }

            writer.Flush();
            return buffer.WrittenSpan.ToArray();
        }
    }
}
