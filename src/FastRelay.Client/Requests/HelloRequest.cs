using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>What WELCOME tells the client about its session.</summary>
internal readonly record struct Welcome(string? ClientId, string? Tenant, string? Node, uint Version);

/// <summary>The HELLO waiting for WELCOME.</summary>
internal sealed class HelloRequest(ulong requestId) : PendingRequest<Welcome>(requestId)
{
    public override string Describe() => "HELLO";

    protected override FrameType SuccessReply => FrameType.Welcome;

    protected override void OnSuccess(in Envelope w) => TrySetResult(new Welcome(
        w.Has(FieldMask.ClientId) ? w.ClientIdString : null,
        w.Has(FieldMask.Tenant) ? System.Text.Encoding.UTF8.GetString(w.Tenant.Span) : null,
        w.Has(FieldMask.Node) ? System.Text.Encoding.UTF8.GetString(w.Node.Span) : null,
        w.Version));
}
