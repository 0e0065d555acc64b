namespace FastRelay.Client;

/// <summary>A key of the relay's key-value store as <see cref="FastRelayClient.KvGetAsync"/> found it.</summary>
/// <param name="Key">The key.</param>
/// <param name="Value">The value (a copy the caller owns).</param>
/// <param name="Version">The key's version: every write gives it a new, higher one (use it for compare-and-set).</param>
/// <param name="Ttl">The time left until the key expires, or null when it does not expire.</param>
public sealed record KvEntry(string Key, ReadOnlyMemory<byte> Value, ulong Version, TimeSpan? Ttl);
