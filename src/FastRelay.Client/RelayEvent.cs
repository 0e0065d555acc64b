using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>One delivered event. Owns its payload: it stays valid after the receive buffer is reused.</summary>
public sealed class RelayEvent
{
    public RelayEvent(string topic, ulong epoch, ulong seq, string? clientId, string? messageId, string? prevEventId,
        long timestamp, EventFlags flags, ReadOnlyMemory<byte> payload)
    {
        Topic = topic;
        Epoch = epoch;
        Seq = seq;
        ClientId = clientId;
        MessageId = messageId;
        PrevEventId = prevEventId;
        Timestamp = timestamp;
        Flags = flags;
        Payload = payload;
    }

    public string Topic { get; }

    public ulong Epoch { get; }

    public ulong Seq { get; }

    /// <summary>The publisher's client id.</summary>
    public string? ClientId { get; }

    public string? MessageId { get; }

    public string? PrevEventId { get; }

    /// <summary>Server ingest time, Unix microseconds.</summary>
    public long Timestamp { get; }

    /// <summary>Server ingest time as a UTC <see cref="DateTimeOffset"/> (microsecond precision).</summary>
    public DateTimeOffset TimestampUtc => DateTimeOffset.UnixEpoch.AddTicks(Timestamp * TimeSpan.TicksPerMicrosecond);

    public EventFlags Flags { get; }

    /// <summary>The publisher's ordering key, if it set one (<see cref="PublishOptions.Key"/>).</summary>
    public string? Key { get; init; }

    public ReadOnlyMemory<byte> Payload { get; }

    public override string ToString() => $"{Topic}#{Epoch}:{Seq} ({Payload.Length} bytes)";
}
