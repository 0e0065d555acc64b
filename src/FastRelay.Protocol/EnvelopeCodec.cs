using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using MessagePack;

namespace FastRelay.Protocol;

/// <summary>
/// Hand-written MessagePack codec for <see cref="Envelope"/> on MessagePackReader/Writer
/// (MessagePackSerializer's resolvers are not Native-AOT safe). Decode slices the source; nothing is copied.
/// </summary>
public static class EnvelopeCodec
{
    /// <summary>
    /// Decodes one envelope from exactly <paramref name="source"/>. On failure <paramref name="field"/> names the
    /// offending field where there is one. Never throws for bad input.
    /// </summary>
    public static DecodeError TryDecode(ReadOnlyMemory<byte> source, out Envelope envelope, out EnvelopeField field)
    {
        envelope = default;
        field = EnvelopeField.Type;
        var reader = new MessagePackReader(source);
        try
        {
            if (reader.End || reader.NextMessagePackType != MessagePackType.Map)
            {
                return DecodeError.Malformed;
            }

            int count = reader.ReadMapHeader();
            for (int i = 0; i < count; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.Integer)
                {
                    // Only integer keys are defined; anything else is an extension we skip.
                    reader.Skip();
                    reader.Skip();
                    continue;
                }

                ulong key = reader.ReadUInt64();
                if (key > 31)
                {
                    reader.Skip();
                    continue;
                }

                field = (EnvelopeField)key;
                var mask = (FieldMask)(1u << (int)key);
                if ((envelope.Present & mask) != 0)
                {
                    return DecodeError.DuplicateField;
                }

                if (reader.TryReadNil())
                {
                    continue; // nil == absent
                }

                var error = ReadField(ref reader, ref envelope, field);
                if (error != DecodeError.None)
                {
                    return error;
                }

                envelope.Present |= mask;
            }

            if (!reader.End)
            {
                return DecodeError.TrailingBytes;
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Untrusted input: MessagePackReader reports truncation and bad codes with several exception types
            // (EndOfStream, MessagePackSerialization, ArgumentOutOfRange from Skip on a garbage length, ...).
            return DecodeError.Malformed;
        }

        if (!envelope.Has(FieldMask.Type))
        {
            field = EnvelopeField.Type;
            return DecodeError.MissingType;
        }

        return DecodeError.None;
    }

    private static DecodeError ReadField(ref MessagePackReader reader, ref Envelope e, EnvelopeField field)
    {
        switch (field)
        {
            case EnvelopeField.Type:
                {
                    if (!TryReadUInt(ref reader, out ulong v)) return DecodeError.WrongFieldType;
                    if (v > byte.MaxValue || !FrameTypes.IsDefined((byte)v)) return DecodeError.UnknownType;
                    e.Type = (FrameType)v;
                    return DecodeError.None;
                }
            case EnvelopeField.RequestId: return TryReadUInt(ref reader, out e.RequestId) ? DecodeError.None : DecodeError.WrongFieldType;
            case EnvelopeField.Epoch: return TryReadUInt(ref reader, out e.Epoch) ? DecodeError.None : DecodeError.WrongFieldType;
            case EnvelopeField.Seq: return TryReadUInt(ref reader, out e.Seq) ? DecodeError.None : DecodeError.WrongFieldType;
            case EnvelopeField.Timestamp:
                if (reader.NextMessagePackType != MessagePackType.Integer) return DecodeError.WrongFieldType;
                e.Timestamp = reader.ReadInt64();
                return DecodeError.None;
            case EnvelopeField.Flags:
                {
                    if (!TryReadUInt(ref reader, out ulong v) || v > uint.MaxValue) return DecodeError.WrongFieldType;
                    e.Flags = (EventFlags)(uint)v;
                    return DecodeError.None;
                }
            case EnvelopeField.RetryAfterMs:
                {
                    if (!TryReadUInt(ref reader, out ulong v) || v > uint.MaxValue) return DecodeError.WrongFieldType;
                    e.RetryAfterMs = (uint)v;
                    return DecodeError.None;
                }
            case EnvelopeField.ErrorCode:
                {
                    if (!TryReadUInt(ref reader, out ulong v) || v > ushort.MaxValue) return DecodeError.WrongFieldType;
                    e.ErrorCode = (ErrorCode)(ushort)v;
                    return DecodeError.None;
                }
            case EnvelopeField.Credits:
                {
                    if (!TryReadUInt(ref reader, out ulong v) || v > uint.MaxValue) return DecodeError.WrongFieldType;
                    e.Credits = (uint)v;
                    return DecodeError.None;
                }
            case EnvelopeField.TtlMs:
                {
                    if (!TryReadUInt(ref reader, out ulong v) || v > uint.MaxValue) return DecodeError.WrongFieldType;
                    e.TtlMs = (uint)v;
                    return DecodeError.None;
                }
            case EnvelopeField.Version:
                {
                    if (!TryReadUInt(ref reader, out ulong v) || v > uint.MaxValue) return DecodeError.WrongFieldType;
                    e.Version = (uint)v;
                    return DecodeError.None;
                }
            case EnvelopeField.Topic: return TryReadStr(ref reader, ProtocolLimits.MaxTopicBytes, out e.Topic);
            case EnvelopeField.ClientId: return TryReadStr(ref reader, ProtocolLimits.MaxIdBytes, out e.ClientId);
            case EnvelopeField.MessageId: return TryReadStr(ref reader, ProtocolLimits.MaxIdBytes, out e.MessageId);
            case EnvelopeField.PrevEventId: return TryReadStr(ref reader, ProtocolLimits.MaxIdBytes, out e.PrevEventId);
            case EnvelopeField.Reason: return TryReadStr(ref reader, ProtocolLimits.MaxReasonBytes, out e.Reason);
            case EnvelopeField.Token: return TryReadStr(ref reader, ProtocolLimits.MaxTokenBytes, out e.Token);
            case EnvelopeField.Tenant: return TryReadStr(ref reader, ProtocolLimits.MaxIdBytes, out e.Tenant);
            case EnvelopeField.Group: return TryReadStr(ref reader, ProtocolLimits.MaxIdBytes, out e.Group);
            case EnvelopeField.Node: return TryReadStr(ref reader, ProtocolLimits.MaxIdBytes, out e.Node);
            case EnvelopeField.Key: return TryReadStr(ref reader, ProtocolLimits.MaxKeyBytes, out e.Key);
            case EnvelopeField.Payload:
                {
                    if (reader.NextMessagePackType != MessagePackType.Binary) return DecodeError.WrongFieldType;
                    var seq = reader.ReadBytes();
                    e.Payload = seq.HasValue ? seq.Value.First : default;
                    return DecodeError.None;
                }
            default:
                reader.Skip(); // a key this version does not know: forward compatible
                return DecodeError.None;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryReadUInt(ref MessagePackReader reader, out ulong value)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
        {
            value = 0;
            return false;
        }

        if (reader.NextCode is >= MessagePackCode.MinNegativeFixInt or (>= MessagePackCode.Int8 and <= MessagePackCode.Int64))
        {
            // A signed encoding: fine when the value is non-negative, a type error otherwise.
            long signed = reader.ReadInt64();
            value = (ulong)signed;
            return signed >= 0;
        }

        value = reader.ReadUInt64();
        return true;
    }

    private static DecodeError TryReadStr(ref MessagePackReader reader, int maxBytes, out ReadOnlyMemory<byte> value)
    {
        value = default;
        if (reader.NextMessagePackType != MessagePackType.String)
        {
            return DecodeError.WrongFieldType;
        }

        var seq = reader.ReadStringSequence();
        if (seq.HasValue)
        {
            if (seq.Value.Length > maxBytes)
            {
                return DecodeError.FieldTooLong;
            }

            value = seq.Value.First;
        }

        return DecodeError.None;
    }

    /// <summary>Encodes every present field of <paramref name="e"/> in ascending key order.</summary>
    public static void Encode(IBufferWriter<byte> output, in Envelope e)
    {
        var w = new MessagePackWriter(output);
        Write(ref w, in e);
        w.Flush();
    }

    /// <summary>Encodes into <paramref name="frame"/> (replacing its content) and returns it.</summary>
    public static Frame Encode(Frame frame, in Envelope e)
    {
        frame.Reset();
        Encode((IBufferWriter<byte>)frame, in e);
        frame.Flags = e.Flags;
        return frame;
    }

    private static void Write(ref MessagePackWriter w, in Envelope e)
    {
        var present = e.Present | FieldMask.Type;
        w.WriteMapHeader(BitOperations.PopCount((uint)present));
        w.Write((byte)EnvelopeField.Type);
        w.Write((byte)e.Type);
        if ((present & FieldMask.RequestId) != 0) { w.Write((byte)EnvelopeField.RequestId); w.Write(e.RequestId); }
        if ((present & FieldMask.Topic) != 0) { w.Write((byte)EnvelopeField.Topic); w.WriteString(e.Topic.Span); }
        if ((present & FieldMask.Epoch) != 0) { w.Write((byte)EnvelopeField.Epoch); w.Write(e.Epoch); }
        if ((present & FieldMask.Seq) != 0) { w.Write((byte)EnvelopeField.Seq); w.Write(e.Seq); }
        if ((present & FieldMask.ClientId) != 0) { w.Write((byte)EnvelopeField.ClientId); w.WriteString(e.ClientId.Span); }
        if ((present & FieldMask.MessageId) != 0) { w.Write((byte)EnvelopeField.MessageId); w.WriteString(e.MessageId.Span); }
        if ((present & FieldMask.PrevEventId) != 0) { w.Write((byte)EnvelopeField.PrevEventId); w.WriteString(e.PrevEventId.Span); }
        if ((present & FieldMask.Timestamp) != 0) { w.Write((byte)EnvelopeField.Timestamp); w.Write(e.Timestamp); }
        if ((present & FieldMask.Flags) != 0) { w.Write((byte)EnvelopeField.Flags); w.Write((uint)e.Flags); }
        if ((present & FieldMask.Payload) != 0) { w.Write((byte)EnvelopeField.Payload); w.Write(e.Payload.Span); }
        if ((present & FieldMask.RetryAfterMs) != 0) { w.Write((byte)EnvelopeField.RetryAfterMs); w.Write(e.RetryAfterMs); }
        if ((present & FieldMask.ErrorCode) != 0) { w.Write((byte)EnvelopeField.ErrorCode); w.Write((ushort)e.ErrorCode); }
        if ((present & FieldMask.Reason) != 0) { w.Write((byte)EnvelopeField.Reason); w.WriteString(e.Reason.Span); }
        if ((present & FieldMask.Token) != 0) { w.Write((byte)EnvelopeField.Token); w.WriteString(e.Token.Span); }
        if ((present & FieldMask.Tenant) != 0) { w.Write((byte)EnvelopeField.Tenant); w.WriteString(e.Tenant.Span); }
        if ((present & FieldMask.Group) != 0) { w.Write((byte)EnvelopeField.Group); w.WriteString(e.Group.Span); }
        if ((present & FieldMask.Version) != 0) { w.Write((byte)EnvelopeField.Version); w.Write(e.Version); }
        if ((present & FieldMask.Node) != 0) { w.Write((byte)EnvelopeField.Node); w.WriteString(e.Node.Span); }
        if ((present & FieldMask.TtlMs) != 0) { w.Write((byte)EnvelopeField.TtlMs); w.Write(e.TtlMs); }
        if ((present & FieldMask.Credits) != 0) { w.Write((byte)EnvelopeField.Credits); w.Write(e.Credits); }
        if ((present & FieldMask.Key) != 0) { w.Write((byte)EnvelopeField.Key); w.WriteString(e.Key.Span); }
    }

    /// <summary>
    /// Encodes the EVENT frame for a PUB once, with epoch and seq written as fixed-width uint64 (0xcf + 8 bytes)
    /// so the owner shard can stamp them in place (<see cref="Frame.StampSequence"/>) without re-encoding.
    /// </summary>
    public static void EncodeEventTemplate(Frame frame, in Envelope pub, long timestampMicros)
    {
        frame.Reset();
        var w = new MessagePackWriter(frame);
        const FieldMask copied = FieldMask.ClientId | FieldMask.MessageId | FieldMask.PrevEventId | FieldMask.Flags | FieldMask.Payload | FieldMask.Key;
        var present = FieldMask.Type | FieldMask.Topic | FieldMask.Epoch | FieldMask.Seq | FieldMask.Timestamp | (pub.Present & copied);
        w.WriteMapHeader(BitOperations.PopCount((uint)present));
        w.Write((byte)EnvelopeField.Type);
        w.Write((byte)FrameType.Event);
        w.Write((byte)EnvelopeField.Topic);
        w.WriteString(pub.Topic.Span);
        w.Flush();
        int topicStart = frame.Length - pub.Topic.Length;
        w.Write((byte)EnvelopeField.Epoch);
        w.Flush();
        int epochOffset = frame.Length;
        w.WriteUInt64(0);
        w.Write((byte)EnvelopeField.Seq);
        w.Flush();
        int seqOffset = frame.Length;
        w.WriteUInt64(0);
        if ((present & FieldMask.ClientId) != 0) { w.Write((byte)EnvelopeField.ClientId); w.WriteString(pub.ClientId.Span); }
        if ((present & FieldMask.MessageId) != 0) { w.Write((byte)EnvelopeField.MessageId); w.WriteString(pub.MessageId.Span); }
        if ((present & FieldMask.PrevEventId) != 0) { w.Write((byte)EnvelopeField.PrevEventId); w.WriteString(pub.PrevEventId.Span); }
        w.Write((byte)EnvelopeField.Timestamp);
        w.Write(timestampMicros);
        if ((present & FieldMask.Flags) != 0) { w.Write((byte)EnvelopeField.Flags); w.Write((uint)pub.Flags); }
        if ((present & FieldMask.Payload) != 0) { w.Write((byte)EnvelopeField.Payload); w.Write(pub.Payload.Span); }
        int keyStart = -1;
        if ((present & FieldMask.Key) != 0)
        {
            // Last, so a keyless event's bytes are unchanged; the frame remembers where it is for consumer groups.
            w.Write((byte)EnvelopeField.Key);
            w.WriteString(pub.Key.Span);
            w.Flush();
            keyStart = frame.Length - pub.Key.Length;
        }

        w.Flush();
        frame.SetEventLayout(topicStart, pub.Topic.Length, epochOffset, seqOffset, keyStart, pub.Key.Length);
        frame.Flags = pub.Flags;
    }

    /// <summary>
    /// Merges two consecutive partial EVENT frames of one topic into <paramref name="merged"/>: the first one's
    /// metadata, the second one's seq, timestamp and flags (plus <see cref="EventFlags.Coalesced"/>), and the two
    /// payloads concatenated. False when the frames are not two partials of the same topic and epoch.
    /// </summary>
    public static bool TryCoalesce(Frame first, Frame second, Frame merged)
    {
        if (DecodeEvent(first, out var a) is false || DecodeEvent(second, out var b) is false
            || (a.Flags & EventFlags.Partial) == 0 || (b.Flags & EventFlags.Partial) == 0
            || a.Epoch != b.Epoch || b.Seq <= a.Seq || !a.Topic.Span.SequenceEqual(b.Topic.Span))
        {
            return false;
        }

        int length = a.Payload.Length + b.Payload.Length;
        byte[] scratch = ArrayPool<byte>.Shared.Rent(Math.Max(1, length));
        try
        {
            a.Payload.Span.CopyTo(scratch);
            b.Payload.Span.CopyTo(scratch.AsSpan(a.Payload.Length));
            var combined = a;
            combined.Payload = new ReadOnlyMemory<byte>(scratch, 0, length);
            combined.Flags = b.Flags | EventFlags.Coalesced;
            combined.Present |= FieldMask.Payload | FieldMask.Flags;
            EncodeEventTemplate(merged, in combined, b.Timestamp);
            merged.StampSequence(b.Epoch, b.Seq);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private static bool DecodeEvent(Frame frame, out Envelope e) =>
        frame.IsEvent && TryDecode(frame.Memory, out e, out _) == DecodeError.None && e.Type == FrameType.Event
            ? true
            : Fail(out e);

    private static bool Fail(out Envelope e)
    {
        e = default;
        return false;
    }
}
