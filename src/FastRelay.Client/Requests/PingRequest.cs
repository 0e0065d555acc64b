using System.Diagnostics;
using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>A PING waiting for its PONG; the result is the round-trip time.</summary>
internal sealed class PingRequest(ulong requestId) : PendingRequest<TimeSpan>(requestId)
{
    private long _sentAt = Stopwatch.GetTimestamp();

    public override string Describe() => "PING";

    protected override FrameType SuccessReply => FrameType.Pong;

    /// <summary>Restarts the clock just before the frame is queued.</summary>
    public void MarkSent() => _sentAt = Stopwatch.GetTimestamp();

    protected override void OnSuccess(in Envelope reply) => TrySetResult(Stopwatch.GetElapsedTime(_sentAt));
}
