using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A SUB to one topic waiting for its ACK (or RECOVERED / NOT_RECOVERED when it resumes). The subscription goes live on
/// the receive loop, before the next frame is read, so no event that follows the reply can be missed.
/// </summary>
internal sealed class SubscribeRequest(ulong requestId, FastRelayClient client, ClientConnection connection, Subscription subscription)
    : PendingRequest<Subscription>(requestId)
{
    public override string Describe() => $"SUB to '{subscription.Topic}'";

    protected override FrameType SuccessReply => FrameType.Ack;

    protected override bool IsSuccessReply(FrameType type) => type is FrameType.Ack or FrameType.Recovered or FrameType.NotRecovered;

    protected override void OnSuccess(in Envelope reply)
    {
        if (client.OnTopicSubscribed(connection, subscription, in reply))
        {
            TrySetResult(subscription);
        }
        else
        {
            TrySetException(connection.NotConnected());
        }
    }

    protected override void OnRefused(FastRelayException error)
    {
        client.OnSubscribeAnswered(subscription.Topic);
        TrySetException(error);
    }

    public override void Fail(Exception error)
    {
        client.OnSubscribeAnswered(subscription.Topic);
        base.Fail(error);
    }
}
