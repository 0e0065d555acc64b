using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>A SUB waiting for its ACK. The subscription goes live on the receive loop, before the next frame is read,
/// so no event that follows the ACK can be missed.</summary>
internal sealed class SubscribeRequest(ulong requestId, Subscription subscription, SubscriptionTable table)
    : PendingRequest<Subscription>(requestId)
{
    public override string Describe() => $"SUB to '{subscription.Topic}'";

    protected override FrameType SuccessReply => FrameType.Ack;

    protected override void OnSuccess(in Envelope ack)
    {
        if (!subscription.IsActive)
        {
            return; // the caller gave up (cancel) and already ended it
        }

        subscription.Activate(ack.Epoch, ack.Seq);
        if (table.TryAdd(subscription))
        {
            TrySetResult(subscription);
        }
        else
        {
            TrySetException(new FastRelayConnectionException(ErrorCode.None, "the connection closed while subscribing"));
        }
    }
}
