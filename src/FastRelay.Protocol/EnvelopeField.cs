namespace FastRelay.Protocol;

/// <summary>Integer keys of the envelope map. Values are wire-stable; unknown keys are skipped by readers.</summary>
public enum EnvelopeField : byte
{
    Type = 0,
    RequestId = 1,
    Topic = 2,
    Epoch = 3,
    Seq = 4,
    ClientId = 5,
    MessageId = 6,
    PrevEventId = 7,
    Timestamp = 8,
    Flags = 9,
    Payload = 10,
    RetryAfterMs = 11,
    ErrorCode = 12,
    Reason = 13,
    Token = 14,
    Tenant = 15,
    Group = 16,
    Version = 17,
    Node = 18,
    TtlMs = 19,
    Credits = 20,
    Key = 21,
}

/// <summary>Which fields an <see cref="Envelope"/> carries (bit n = <see cref="EnvelopeField"/> n).</summary>
[Flags]
public enum FieldMask : uint
{
    None = 0,
    Type = 1u << EnvelopeField.Type,
    RequestId = 1u << EnvelopeField.RequestId,
    Topic = 1u << EnvelopeField.Topic,
    Epoch = 1u << EnvelopeField.Epoch,
    Seq = 1u << EnvelopeField.Seq,
    ClientId = 1u << EnvelopeField.ClientId,
    MessageId = 1u << EnvelopeField.MessageId,
    PrevEventId = 1u << EnvelopeField.PrevEventId,
    Timestamp = 1u << EnvelopeField.Timestamp,
    Flags = 1u << EnvelopeField.Flags,
    Payload = 1u << EnvelopeField.Payload,
    RetryAfterMs = 1u << EnvelopeField.RetryAfterMs,
    ErrorCode = 1u << EnvelopeField.ErrorCode,
    Reason = 1u << EnvelopeField.Reason,
    Token = 1u << EnvelopeField.Token,
    Tenant = 1u << EnvelopeField.Tenant,
    Group = 1u << EnvelopeField.Group,
    Version = 1u << EnvelopeField.Version,
    Node = 1u << EnvelopeField.Node,
    TtlMs = 1u << EnvelopeField.TtlMs,
    Credits = 1u << EnvelopeField.Credits,
    Key = 1u << EnvelopeField.Key,
}
