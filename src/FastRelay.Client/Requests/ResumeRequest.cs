using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A SUB {topic, epoch, seq} that resumes a topic the client already delivers (after a reconnect, or to repair a gap):
/// RECOVERED (the missed events follow) or NOT_RECOVERED (a notice, and the stream goes on from the current position).
/// </summary>
internal sealed class ResumeRequest(ulong requestId, FastRelayClient client, ClientConnection connection, TopicRoute route)
    : PendingRequest<bool>(requestId)
{
    public override string Describe() => $"resuming SUB to '{route.Topic}' from {route.Position}";

    protected override FrameType SuccessReply => FrameType.Recovered;

    protected override bool IsSuccessReply(FrameType type) => type is FrameType.Recovered or FrameType.NotRecovered or FrameType.Ack;

    protected override void OnSuccess(in Envelope reply)
    {
        client.OnResumed(route, in reply);
        TrySetResult(true);
    }

    protected override void OnRefused(FastRelayException error)
    {
        client.OnResumeRefused(route, error);
        TrySetException(error);
    }

    public override void Fail(Exception error)
    {
        if (error is TimeoutException)
        {
            // The topic drops its events until this reply: without one the stream is stuck, so start over.
            connection.Abort(new FastRelayConnectionException(ErrorCode.None, $"{Describe()} got no reply in time: {error.Message}"));
        }

        base.Fail(error);
    }
}
