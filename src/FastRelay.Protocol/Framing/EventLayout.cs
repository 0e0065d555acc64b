using System.Runtime.InteropServices;

namespace FastRelay.Protocol;

/// <summary>
/// Where an event frame's topic, epoch, seq and key sit in its bytes: with the bytes, what a copy needs to act as the
/// same <see cref="Frame"/> (<see cref="Frame.CopyEventFrom"/>). 16 bytes, blittable, so it can be stored with the bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct EventLayout
{
    // The topic (at most ProtocolLimits.MaxTopicBytes) and the epoch and seq slots right behind it open every event
    // frame, so their offsets fit 16 bits; the key comes last, after the payload. 0 = no epoch/seq slot, -1 = no key.
    internal readonly ushort TopicStart;
    internal readonly ushort TopicLength;
    internal readonly ushort EpochOffset;
    internal readonly ushort SeqOffset;
    internal readonly int KeyStart;
    internal readonly int KeyLength;

    internal EventLayout(ushort topicStart, ushort topicLength, ushort epochOffset, ushort seqOffset, int keyStart, int keyLength)
    {
        TopicStart = topicStart;
        TopicLength = topicLength;
        EpochOffset = epochOffset;
        SeqOffset = seqOffset;
        KeyStart = keyStart;
        KeyLength = keyLength;
    }
}
