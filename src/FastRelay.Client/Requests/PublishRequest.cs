using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>A PUB waiting for its ACK.</summary>
internal sealed class PublishRequest(ulong requestId, string topic) : PendingRequest<PublishAck>(requestId)
{
    public override string Describe() => $"PUB to '{topic}'";

    protected override FrameType SuccessReply => FrameType.Ack;

    protected override void OnSuccess(in Envelope ack)
    {
        // The ACK echoes the topic; reuse the caller's string rather than allocating a new one per ACK.
        string? ackTopic = !ack.Has(FieldMask.Topic) ? null
            : Utf8Text.Matches(ack.Topic.Span, topic) ? topic
            : ack.TopicString;
        TrySetResult(new PublishAck(ackTopic, ack.Epoch, ack.Seq, (ack.Flags & EventFlags.Duplicate) != 0));
    }
}
