using FastRelay.Protocol;

namespace FastRelay.Client.Tests.Fakes;

/// <summary>An envelope the fake server received, decoded over its own copy of the bytes.</summary>
internal sealed class ReceivedFrame
{
    public ReceivedFrame(byte[] bytes)
    {
        Bytes = bytes;
        var error = EnvelopeCodec.TryDecode(bytes, out Envelope, out var field);
        if (error != DecodeError.None)
        {
            throw new InvalidDataException($"the client sent an undecodable envelope: {DecodeErrors.Describe(error, field)}");
        }
    }

    public byte[] Bytes { get; }

    public readonly Envelope Envelope;

    public FrameType Type => Envelope.Type;

    public ulong RequestId => Envelope.RequestId;

    public string? Topic => Envelope.Has(FieldMask.Topic) ? Envelope.TopicString : null;

    public bool Has(FieldMask field) => Envelope.Has(field);

    public override string ToString() => $"{Type} #{RequestId} {Topic}";
}
