using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>A request whose success reply carries nothing the caller needs (UNSUB).</summary>
internal sealed class AckRequest(ulong requestId, string description) : PendingRequest<bool>(requestId)
{
    public override string Describe() => description;

    protected override FrameType SuccessReply => FrameType.Ack;

    protected override void OnSuccess(in Envelope reply) => TrySetResult(true);
}
