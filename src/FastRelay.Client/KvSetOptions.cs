namespace FastRelay.Client;

/// <summary>Options of <see cref="FastRelayClient.KvSetAsync"/>.</summary>
public sealed class KvSetOptions
{
    /// <summary>The key expires this long after the write (rounded up to whole milliseconds); null: never.</summary>
    public TimeSpan? Ttl { get; init; }

    /// <summary>
    /// Compare-and-set: write only when the key's current version is this one (0: only when the key does not exist);
    /// otherwise <see cref="FastRelayKvConflictException"/>.
    /// </summary>
    public ulong? ExpectedVersion { get; init; }

    /// <summary>Write only when the key does not exist; otherwise <see cref="FastRelayKvConflictException"/>.</summary>
    public bool IfAbsent { get; init; }
}
