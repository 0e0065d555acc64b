namespace FastRelay.Protocol;

/// <summary>Why an envelope could not be decoded. <see cref="None"/> means success.</summary>
public enum DecodeError : byte
{
    None = 0,
    /// <summary>The bytes are not a MessagePack map, or the map is truncated.</summary>
    Malformed,
    /// <summary>The map has no type field.</summary>
    MissingType,
    /// <summary>The type is not a known frame type.</summary>
    UnknownType,
    /// <summary>A known field has the wrong MessagePack type.</summary>
    WrongFieldType,
    /// <summary>A field is longer than its limit.</summary>
    FieldTooLong,
    /// <summary>Bytes follow the envelope map.</summary>
    TrailingBytes,
    /// <summary>A field appears twice.</summary>
    DuplicateField,
}

public static class DecodeErrors
{
    /// <summary>A human-readable reason for an ERROR frame or a close reason.</summary>
    public static string Describe(DecodeError error, EnvelopeField field) => error switch
    {
        DecodeError.None => "ok",
        DecodeError.Malformed => "malformed envelope: expected a complete MessagePack map",
        DecodeError.MissingType => "malformed envelope: field 0 (type) is missing",
        DecodeError.UnknownType => "unknown frame type",
        DecodeError.WrongFieldType => $"malformed envelope: field {(int)field} ({field}) has the wrong MessagePack type",
        DecodeError.FieldTooLong => $"field {(int)field} ({field}) exceeds its length limit",
        DecodeError.TrailingBytes => "malformed envelope: bytes follow the envelope map",
        DecodeError.DuplicateField => $"malformed envelope: field {(int)field} ({field}) appears twice",
        _ => "malformed envelope",
    };
}
