using System.Buffers;
using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>Encodes the client frames the tests send and checks the server frames they receive.</summary>
internal static class Envelopes
{
    public static byte[] Encode(Envelope envelope)
    {
        var output = new ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(output, in envelope);
        return output.WrittenSpan.ToArray();
    }

    public static byte[] Hello(ulong requestId, string clientId) =>
        Encode(new Envelope(FrameType.Hello).WithRequestId(requestId).WithClientId(clientId));

    public static byte[] Sub(ulong requestId, string topic) =>
        Encode(new Envelope(FrameType.Sub).WithRequestId(requestId).WithTopic(topic));

    public static byte[] Pub(ulong requestId, string topic, byte[] payload) =>
        Encode(new Envelope(FrameType.Pub).WithRequestId(requestId).WithTopic(topic).WithPayload(payload));

    public static byte[] Ping(ulong requestId, byte[] payload) =>
        Encode(new Envelope(FrameType.Ping).WithRequestId(requestId).WithPayload(payload));

    /// <summary>Decodes one envelope, failing the test when the server sent something undecodable.</summary>
    public static Envelope Decode(byte[] bytes)
    {
        var error = EnvelopeCodec.TryDecode(bytes, out var envelope, out var field);
        Assert.True(error == DecodeError.None, $"The server sent an undecodable envelope ({error}, field {field}): {Convert.ToHexString(bytes)}");
        return envelope;
    }

    public static string Describe(in Envelope e)
    {
        var text = new StringBuilder(e.Type.ToString());
        if (e.Has(FieldMask.RequestId)) text.Append(" request_id=").Append(e.RequestId);
        if (e.Has(FieldMask.Topic)) text.Append(" topic=").Append(e.TopicString);
        if (e.Has(FieldMask.ErrorCode)) text.Append(" error_code=").Append((int)e.ErrorCode);
        if (e.Has(FieldMask.Reason)) text.Append(" reason=\"").Append(e.ReasonString).Append('"');
        return text.ToString();
    }

    private static void AssertType(in Envelope e, FrameType type) =>
        Assert.True(e.Type == type, $"Expected {type}, got {Describe(e)}");

    public static void AssertWelcome(in Envelope e, ulong requestId, string clientId)
    {
        AssertType(e, FrameType.Welcome);
        Assert.Equal(requestId, e.RequestId);
        Assert.Equal(clientId, e.ClientIdString);
        Assert.Equal(ProtocolLimits.Version, e.Version);
        Assert.Equal("default", Encoding.UTF8.GetString(e.Tenant.Span));
        Assert.Equal(RelayFixture.NodeName, Encoding.UTF8.GetString(e.Node.Span));
    }

    /// <summary>ACK of a SUB: the topic, a non-zero epoch and the topic's last seq. Returns the epoch.</summary>
    public static ulong AssertSubscribed(in Envelope e, ulong requestId, string topic, ulong seq = 0)
    {
        AssertType(e, FrameType.Ack);
        Assert.Equal(requestId, e.RequestId);
        Assert.Equal(topic, e.TopicString);
        Assert.True(e.Has(FieldMask.Epoch) && e.Epoch != 0, "SUB ACK without an epoch");
        Assert.True(e.Has(FieldMask.Seq), "SUB ACK without a seq");
        Assert.Equal(seq, e.Seq);
        return e.Epoch;
    }

    public static void AssertPublished(in Envelope e, ulong requestId, ulong epoch, ulong seq)
    {
        AssertType(e, FrameType.Ack);
        Assert.Equal(requestId, e.RequestId);
        Assert.Equal((epoch, seq), (e.Epoch, e.Seq));
    }

    public static void AssertEvent(in Envelope e, string topic, ulong epoch, ulong seq, string clientId, byte[] payload)
    {
        AssertType(e, FrameType.Event);
        Assert.Equal(topic, e.TopicString);
        Assert.Equal((epoch, seq), (e.Epoch, e.Seq));
        Assert.Equal(clientId, e.ClientIdString);
        Assert.Equal(payload, e.Payload.ToArray());
        long nowMicros = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
        Assert.True(e.Has(FieldMask.Timestamp), "EVENT without a timestamp");
        Assert.InRange(e.Timestamp, nowMicros - 60_000_000, nowMicros + 60_000_000);
    }

    public static void AssertError(in Envelope e, ErrorCode code, string reason, ulong requestId = 0)
    {
        AssertType(e, FrameType.Error);
        Assert.Equal(code, e.ErrorCode);
        Assert.Equal(reason, e.ReasonString);
        Assert.Equal(requestId != 0, e.Has(FieldMask.RequestId));
        Assert.Equal(requestId, e.RequestId);
    }

    public static void AssertPong(in Envelope e, ulong requestId, byte[] payload)
    {
        AssertType(e, FrameType.Pong);
        Assert.Equal(requestId, e.RequestId);
        Assert.Equal(payload, e.Payload.ToArray());
    }
}

/// <summary>The HELLO / SUB / PUB exchanges every transport test runs.</summary>
internal static class Exchange
{
    public static async Task HelloAsync(IEnvelopeClient client, string clientId, ulong requestId = 1)
    {
        await client.SendEnvelopeAsync(Envelopes.Hello(requestId, clientId));
        Envelopes.AssertWelcome(await client.ReadEnvelopeAsync(), requestId, clientId);
    }

    /// <summary>Subscribes and returns the topic's epoch.</summary>
    public static async Task<ulong> SubscribeAsync(IEnvelopeClient client, string topic, ulong requestId = 2, ulong lastSeq = 0)
    {
        await client.SendEnvelopeAsync(Envelopes.Sub(requestId, topic));
        return Envelopes.AssertSubscribed(await client.ReadEnvelopeAsync(), requestId, topic, lastSeq);
    }

    /// <summary>
    /// <paramref name="publisher"/> publishes on <paramref name="topic"/>; asserts its ACK (epoch, seq) and the EVENT
    /// <paramref name="subscriber"/> receives.
    /// </summary>
    public static async Task PublishAndReceiveAsync(
        IEnvelopeClient publisher, string publisherId, IEnvelopeClient subscriber, string topic, ulong epoch, ulong seq, ulong requestId = 3)
    {
        byte[] payload = Encoding.UTF8.GetBytes($"{publisherId} -> {topic} #{seq}");
        await publisher.SendEnvelopeAsync(Envelopes.Pub(requestId, topic, payload));
        Envelopes.AssertPublished(await publisher.ReadEnvelopeAsync(), requestId, epoch, seq);
        Envelopes.AssertEvent(await subscriber.ReadEnvelopeAsync(), topic, epoch, seq, publisherId, payload);
    }
}
