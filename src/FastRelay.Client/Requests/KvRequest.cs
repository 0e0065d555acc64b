using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A KV_GET, KV_SET or KV_DELETE waiting for its KV_RESULT: the entry found (null when absent), or for a write the
/// new version with no value. ERROR 409 becomes <see cref="FastRelayKvConflictException"/>.
/// </summary>
internal sealed class KvRequest(ulong requestId, string key, FrameType kind) : PendingRequest<KvEntry?>(requestId)
{
    public override string Describe() => $"{kind} of key '{key}'";

    protected override FrameType SuccessReply => FrameType.KvResult;

    protected override void OnSuccess(in Envelope reply)
    {
        if (reply.Seq == 0)
        {
            TrySetResult(null);
            return;
        }

        TrySetResult(new KvEntry(
            key,
            reply.Payload.IsEmpty ? ReadOnlyMemory<byte>.Empty : reply.Payload.ToArray(),
            reply.Seq,
            reply.Has(FieldMask.TtlMs) ? TimeSpan.FromMilliseconds(reply.TtlMs) : null));
    }

    protected override FastRelayException MapError(in Envelope reply) =>
        reply.Type == FrameType.Error && reply.Has(FieldMask.ErrorCode) && reply.ErrorCode == ErrorCode.Conflict
            ? new FastRelayKvConflictException(key, reply.Seq, ServerErrors.ReasonOf(reply, $"version conflict on key '{key}'"))
            : base.MapError(in reply);
}
