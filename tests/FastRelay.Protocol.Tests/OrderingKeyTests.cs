using System.Buffers;

namespace FastRelay.Protocol.Tests;

/// <summary>Field 21 (key): the ordering key a PUB carries to its EVENT frame.</summary>
public sealed class OrderingKeyTests
{
    private static byte[] Encode(in Envelope e)
    {
        var buffer = new ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(buffer, in e);
        return buffer.WrittenSpan.ToArray();
    }

    [Fact]
    public void Key_round_trips_as_field_21_up_to_its_limit()
    {
        string longest = new('k', ProtocolLimits.MaxKeyBytes);
        var bytes = Encode(new Envelope(FrameType.Pub).WithTopic("orders").WithKey(longest).WithPayload(new byte[] { 1 }));

        Assert.Equal(DecodeError.None, EnvelopeCodec.TryDecode(bytes, out var decoded, out _));
        Assert.True(decoded.Has(FieldMask.Key));
        Assert.Equal(longest, decoded.KeyString);
        Assert.Equal(1u << 21, (uint)FieldMask.Key);
    }

    [Fact]
    public void A_key_over_256_bytes_is_rejected_and_the_field_is_named()
    {
        // 129 two-byte characters: 258 UTF-8 bytes, though only 129 chars.
        var bytes = Encode(new Envelope(FrameType.Pub).WithTopic("orders").WithKey(new string('é', 129)));

        Assert.Equal(DecodeError.FieldTooLong, EnvelopeCodec.TryDecode(bytes, out _, out var field));
        Assert.Equal(EnvelopeField.Key, field);
        Assert.Contains("Key", DecodeErrors.Describe(DecodeError.FieldTooLong, field));
    }

    [Fact]
    public void A_key_that_is_not_a_string_is_a_type_error()
    {
        // {0: PUB, 21: bin8 [1]}
        byte[] bytes = [0x82, 0x00, (byte)FrameType.Pub, 0x15, 0xc4, 0x01, 0x01];

        Assert.Equal(DecodeError.WrongFieldType, EnvelopeCodec.TryDecode(bytes, out _, out var field));
        Assert.Equal(EnvelopeField.Key, field);
    }

    [Fact]
    public void Event_template_carries_the_key_and_the_frame_exposes_it()
    {
        var pub = new Envelope(FrameType.Pub).WithTopic("orders").WithClientId("p").WithKey("customer-42").WithPayload(new byte[] { 7 });
        var frame = Frame.CreateUnpooled();
        EnvelopeCodec.EncodeEventTemplate(frame, in pub, 1);
        frame.StampSequence(3, 9);

        Assert.True(frame.HasKey);
        Assert.Equal("customer-42"u8.ToArray(), frame.Key.ToArray());
        Assert.Equal("orders"u8.ToArray(), frame.Topic.ToArray());
        Assert.Equal(DecodeError.None, EnvelopeCodec.TryDecode(frame.Memory, out var e, out _));
        Assert.Equal(FrameType.Event, e.Type);
        Assert.Equal("customer-42", e.KeyString);
        Assert.Equal(9UL, e.Seq);
        Assert.Equal(new byte[] { 7 }, e.Payload.ToArray());
    }

    [Fact]
    public void A_keyless_event_is_byte_for_byte_what_it_was_and_a_reused_frame_forgets_the_key()
    {
        var pool = new FramePool();
        var frame = pool.Rent();
        EnvelopeCodec.EncodeEventTemplate(frame, new Envelope(FrameType.Pub).WithTopic("t").WithKey("k").WithPayload(new byte[] { 1 }), 1);
        Assert.True(frame.HasKey);

        EnvelopeCodec.EncodeEventTemplate(frame, new Envelope(FrameType.Pub).WithTopic("t").WithPayload(new byte[] { 1 }), 1);
        Assert.False(frame.HasKey);
        Assert.True(frame.Key.IsEmpty);
        // {type: EVENT, topic: "t", epoch: uint64 0, seq: uint64 0, timestamp: 1, payload: bin8 [1]}: no key entry.
        byte[] expected =
        [
            0x86, 0x00, 0x07, 0x02, 0xa1, (byte)'t', 0x03, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0,
            0x04, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x01, 0x0a, 0xc4, 0x01, 0x01,
        ];
        Assert.Equal(expected, frame.Span.ToArray());
        frame.Release();
    }

    [Fact]
    public void Coalescing_two_keyed_partials_keeps_the_key()
    {
        Frame Partial(ulong seq, byte b)
        {
            var f = Frame.CreateUnpooled();
            var pub = new Envelope(FrameType.Pub).WithTopic("t").WithKey("k1").WithFlags(EventFlags.Partial).WithPayload(new[] { b });
            EnvelopeCodec.EncodeEventTemplate(f, in pub, 1);
            f.StampSequence(1, seq);
            return f;
        }

        var merged = Frame.CreateUnpooled();
        Assert.True(EnvelopeCodec.TryCoalesce(Partial(1, 1), Partial(2, 2), merged));
        Assert.Equal("k1"u8.ToArray(), merged.Key.ToArray());
        Assert.Equal(DecodeError.None, EnvelopeCodec.TryDecode(merged.Memory, out var e, out _));
        Assert.Equal("k1", e.KeyString);
        Assert.Equal(new byte[] { 1, 2 }, e.Payload.ToArray());
    }
}
