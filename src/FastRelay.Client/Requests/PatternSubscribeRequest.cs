using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A pattern SUB waiting for its ACK. <paramref name="subscription"/> is null when a reconnect resubscribes the pattern
/// for the subscriptions it already has.
/// </summary>
internal sealed class PatternSubscribeRequest(ulong requestId, FastRelayClient client, ClientConnection connection, PatternRoute route, Subscription? subscription)
    : PendingRequest<Subscription?>(requestId)
{
    public override string Describe() => $"SUB to pattern '{route.Pattern}'";

    protected override FrameType SuccessReply => FrameType.Ack;

    protected override void OnSuccess(in Envelope reply)
    {
        if (subscription is null)
        {
            TrySetResult(null);
        }
        else if (client.OnPatternSubscribed(connection, route, subscription))
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
        client.OnPatternRefused(route, error, firstSubscribe: subscription is not null);
        TrySetException(error);
    }

    public override void Fail(Exception error)
    {
        if (subscription is not null)
        {
            client.OnPatternRefused(route, error, firstSubscribe: true);
        }
        else if (error is TimeoutException)
        {
            connection.Abort(new FastRelayConnectionException(ErrorCode.None, $"{Describe()} got no reply in time: {error.Message}"));
        }

        base.Fail(error);
    }
}
