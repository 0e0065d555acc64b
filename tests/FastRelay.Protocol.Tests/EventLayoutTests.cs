namespace FastRelay.Protocol.Tests;

/// <summary>A copy of an event frame's bytes plus its <see cref="EventLayout"/> acts as the same frame.</summary>
public sealed class EventLayoutTests
{
    private static Frame Event(string topic, string? key, EventFlags flags, int payloadBytes)
    {
        var pub = new Envelope(FrameType.Pub).WithTopic(topic).WithClientId("c").WithPayload(new byte[payloadBytes]).WithFlags(flags);
        if (key is not null)
        {
            pub = pub.WithKey(key);
        }

        var frame = Frame.CreateUnpooled();
        EnvelopeCodec.EncodeEventTemplate(frame, in pub, timestampMicros: 42);
        frame.StampSequence(7, 9);
        return frame;
    }

    [Theory]
    [InlineData("a", null, EventFlags.None, 0)]
    [InlineData("orders.eu", "customer-12", EventFlags.Partial, 300)]
    [InlineData("t", "k", EventFlags.Droppable, 70_000)]
    public void A_copy_with_the_layout_reads_and_stamps_like_the_original(string topic, string? key, EventFlags flags, int payloadBytes)
    {
        string longTopic = topic + new string('x', ProtocolLimits.MaxTopicBytes - topic.Length);
        foreach (var name in new[] { topic, longTopic })
        {
            var original = Event(name, key, flags, payloadBytes);
            var copy = Frame.CreateUnpooled();
            copy.CopyEventFrom(original.Span, original.Layout, original.Seq, original.Flags);

            Assert.True(copy.Span.SequenceEqual(original.Span));
            Assert.True(copy.IsEvent);
            Assert.Equal(9UL, copy.Seq);
            Assert.Equal(flags, copy.Flags);
            Assert.True(copy.Topic.SequenceEqual(original.Topic));
            Assert.Equal(key is not null, copy.HasKey);
            Assert.True(copy.Key.SequenceEqual(original.Key));

            // The epoch and seq slots are where the original has them.
            original.StampSequence(11, 12);
            copy.StampSequence(11, 12);
            Assert.True(copy.Span.SequenceEqual(original.Span));
        }
    }

    [Fact]
    public void A_layout_that_does_not_fit_the_bytes_is_refused()
    {
        var original = Event("orders", "k", EventFlags.None, 10);
        var copy = Frame.CreateUnpooled();
        Assert.Throws<InvalidOperationException>(() => copy.CopyEventFrom(original.Span[..20], original.Layout, 1, EventFlags.None));
        Assert.False(copy.IsEvent);
    }
}
