using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// A KV write was refused with 409: the key's version is not the one expected (or the key exists and the write was
/// if-absent). <see cref="CurrentVersion"/> is the key's version now (0 = absent).
/// </summary>
public sealed class FastRelayKvConflictException(string key, ulong currentVersion, string reason)
    : FastRelayException(ErrorCode.Conflict, reason)
{
    /// <summary>The key written.</summary>
    public string Key { get; } = key;

    /// <summary>The key's current version (0 when it does not exist).</summary>
    public ulong CurrentVersion { get; } = currentVersion;
}
