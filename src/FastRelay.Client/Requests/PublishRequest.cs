using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>A PUB waiting for its ACK.</summary>
internal class PublishRequest(ulong requestId, string topic) : PendingRequest<PublishAck>(requestId)
{
    public string Topic => topic;

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

/// <summary>
/// The first attempt of a PublishAsync with retries on. It keeps a reference to its PUB frame until the outcome, so a
/// BACKOFF (or a 503 from a draining node) can hand the same bytes (same message id) to the retry loop; the task the
/// application awaits is this request's, whichever attempt completes it. The success path costs nothing extra.
/// </summary>
internal sealed class RetryingPublishRequest(ulong requestId, string topic, FastRelayClient client, ClientConnection connection, CancellationToken ct)
    : PublishRequest(requestId, topic)
{
    private Frame? _frame;

    public ClientConnection Connection => connection;

    public CancellationToken Cancellation => ct;

    /// <summary>Holds one reference to the frame (taken by the caller for this request).</summary>
    public void Retain(Frame frame) => _frame = frame;

    /// <summary>Hands the retained frame over (to the retry loop), or null when it is already gone.</summary>
    public Frame? TakeFrame() => Interlocked.Exchange(ref _frame, null);

    protected override void OnSuccess(in Envelope ack)
    {
        base.OnSuccess(in ack);
        TakeFrame()?.Release();
    }

    protected override void OnRefused(FastRelayException error)
    {
        if (!client.TryRetryPublish(this, error))
        {
            TakeFrame()?.Release();
            base.OnRefused(error);
        }
    }

    public override void Fail(Exception error)
    {
        if (!client.TryRetryPublish(this, error))
        {
            TakeFrame()?.Release();
            base.Fail(error);
        }
    }
}
