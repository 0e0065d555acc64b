using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>Maps ERROR and BACKOFF frames to exceptions.</summary>
internal static class ServerErrors
{
    public static FastRelayException FromReply(in Envelope reply) => reply.Type == FrameType.Backoff
        ? new FastRelayBackoffException(TimeSpan.FromMilliseconds(reply.RetryAfterMs), ReasonOf(reply, "the server is overloaded"))
        : new FastRelayException(reply.Has(FieldMask.ErrorCode) ? reply.ErrorCode : ErrorCode.None, ReasonOf(reply, "the server returned an error"));

    public static string ReasonOf(in Envelope reply, string fallback) =>
        reply.Has(FieldMask.Reason) && reply.Reason.Length > 0 ? reply.ReasonString : fallback;
}
