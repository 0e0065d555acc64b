using System.Runtime.CompilerServices;
using System.Text;

namespace FastRelay.Protocol;

/// <summary>
/// One decoded frame. String and binary fields are slices of the buffer the envelope was decoded from
/// (no copy, no allocation): the envelope is valid only while that buffer is.
/// </summary>
public struct Envelope
{
    public FieldMask Present;
    public FrameType Type;
    public ulong RequestId;
    public ReadOnlyMemory<byte> Topic;
    public ulong Epoch;
    public ulong Seq;
    public ReadOnlyMemory<byte> ClientId;
    public ReadOnlyMemory<byte> MessageId;
    public ReadOnlyMemory<byte> PrevEventId;
    public long Timestamp;
    public EventFlags Flags;
    public ReadOnlyMemory<byte> Payload;
    public uint RetryAfterMs;
    public ErrorCode ErrorCode;
    public ReadOnlyMemory<byte> Reason;
    public ReadOnlyMemory<byte> Token;
    public ReadOnlyMemory<byte> Tenant;
    public ReadOnlyMemory<byte> Group;
    public uint Version;
    public ReadOnlyMemory<byte> Node;
    public uint TtlMs;
    public uint Credits;
    public ReadOnlyMemory<byte> Key;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Has(FieldMask field) => (Present & field) != 0;

    public Envelope(FrameType type)
    {
        this = default;
        Type = type;
        Present = FieldMask.Type;
    }

    // Fluent setters for the cold paths (tests, control frames, the client). They mark the field present.
    public Envelope WithRequestId(ulong v) { RequestId = v; Present |= FieldMask.RequestId; return this; }
    public Envelope WithTopic(ReadOnlyMemory<byte> v) { Topic = v; Present |= FieldMask.Topic; return this; }
    public Envelope WithTopic(string v) => WithTopic(Encoding.UTF8.GetBytes(v));
    public Envelope WithEpoch(ulong v) { Epoch = v; Present |= FieldMask.Epoch; return this; }
    public Envelope WithSeq(ulong v) { Seq = v; Present |= FieldMask.Seq; return this; }
    public Envelope WithClientId(ReadOnlyMemory<byte> v) { ClientId = v; Present |= FieldMask.ClientId; return this; }
    public Envelope WithClientId(string v) => WithClientId(Encoding.UTF8.GetBytes(v));
    public Envelope WithMessageId(ReadOnlyMemory<byte> v) { MessageId = v; Present |= FieldMask.MessageId; return this; }
    public Envelope WithMessageId(string v) => WithMessageId(Encoding.UTF8.GetBytes(v));
    public Envelope WithPrevEventId(ReadOnlyMemory<byte> v) { PrevEventId = v; Present |= FieldMask.PrevEventId; return this; }
    public Envelope WithPrevEventId(string v) => WithPrevEventId(Encoding.UTF8.GetBytes(v));
    public Envelope WithTimestamp(long v) { Timestamp = v; Present |= FieldMask.Timestamp; return this; }
    public Envelope WithFlags(EventFlags v) { Flags = v; Present |= FieldMask.Flags; return this; }
    public Envelope WithPayload(ReadOnlyMemory<byte> v) { Payload = v; Present |= FieldMask.Payload; return this; }
    public Envelope WithRetryAfterMs(uint v) { RetryAfterMs = v; Present |= FieldMask.RetryAfterMs; return this; }
    public Envelope WithError(ErrorCode code, string reason)
    {
        ErrorCode = code;
        Reason = Encoding.UTF8.GetBytes(reason);
        Present |= FieldMask.ErrorCode | FieldMask.Reason;
        return this;
    }
    public Envelope WithToken(ReadOnlyMemory<byte> v) { Token = v; Present |= FieldMask.Token; return this; }
    public Envelope WithToken(string v) => WithToken(Encoding.UTF8.GetBytes(v));
    public Envelope WithTenant(ReadOnlyMemory<byte> v) { Tenant = v; Present |= FieldMask.Tenant; return this; }
    public Envelope WithTenant(string v) => WithTenant(Encoding.UTF8.GetBytes(v));
    public Envelope WithGroup(ReadOnlyMemory<byte> v) { Group = v; Present |= FieldMask.Group; return this; }
    public Envelope WithGroup(string v) => WithGroup(Encoding.UTF8.GetBytes(v));
    public Envelope WithVersion(uint v) { Version = v; Present |= FieldMask.Version; return this; }
    public Envelope WithNode(ReadOnlyMemory<byte> v) { Node = v; Present |= FieldMask.Node; return this; }
    public Envelope WithNode(string v) => WithNode(Encoding.UTF8.GetBytes(v));
    public Envelope WithTtlMs(uint v) { TtlMs = v; Present |= FieldMask.TtlMs; return this; }
    public Envelope WithCredits(uint v) { Credits = v; Present |= FieldMask.Credits; return this; }
    public Envelope WithKey(ReadOnlyMemory<byte> v) { Key = v; Present |= FieldMask.Key; return this; }
    public Envelope WithKey(string v) => WithKey(Encoding.UTF8.GetBytes(v));

    public readonly string TopicString => Encoding.UTF8.GetString(Topic.Span);
    public readonly string ReasonString => Encoding.UTF8.GetString(Reason.Span);
    public readonly string ClientIdString => Encoding.UTF8.GetString(ClientId.Span);
    public readonly string MessageIdString => Encoding.UTF8.GetString(MessageId.Span);
    public readonly string PrevEventIdString => Encoding.UTF8.GetString(PrevEventId.Span);
    public readonly string KeyString => Encoding.UTF8.GetString(Key.Span);
}
