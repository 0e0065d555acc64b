namespace FastRelay.Protocol;

/// <summary>The kind of an envelope: field 0 of every frame. Values are wire-stable.</summary>
public enum FrameType : byte
{
    None = 0,
    Hello = 1,
    Welcome = 2,
    Sub = 3,
    Unsub = 4,
    Pub = 5,
    Ack = 6,
    Event = 7,
    Error = 8,
    Backoff = 9,
    Recovered = 10,
    NotRecovered = 11,
    Presence = 12,
    Drain = 13,
    Ping = 14,
    Pong = 15,
    KvGet = 16,
    KvSet = 17,
    KvDelete = 18,
    KvResult = 19,
    GroupAck = 20,
}

internal static class FrameTypes
{
    public const byte Max = (byte)FrameType.GroupAck;

    public static bool IsDefined(byte value) => value is > 0 and <= Max;
}
