namespace FastRelay.Core.Tenancy;

/// <summary>One configured tenant: its name and the secrets its tokens may be signed with.</summary>
public sealed class TenantOptions
{
    /// <summary>Shortest accepted secret, in UTF-8 bytes (HS256 wants a key at least as long as its 32-byte hash).</summary>
    public const int MinSecretBytes = 32;

    /// <summary>Tenant name: 1..64 characters of [a-z0-9_-].</summary>
    public string Name { get; set; } = "";

    /// <summary>
    /// HMAC-SHA256 secrets, used as the UTF-8 bytes of each string (no base64 decoding); each must be at least
    /// <see cref="MinSecretBytes"/> bytes. A token signed with any of them is accepted, so a new secret can be
    /// added before tokens signed with the old one expire, and the old one removed afterwards.
    /// </summary>
    public List<string> Secrets { get; set; } = [];

    /// <summary>PUBs per second for the whole tenant; overrides Relay:Limits:PublishRatePerTenant (0 = unlimited).</summary>
    public double? PublishRate { get; set; }

    /// <summary>Burst allowance of <see cref="PublishRate"/>.</summary>
    public double? PublishBurst { get; set; }

    /// <summary>Open sessions the tenant may hold; overrides Relay:Limits:MaxConnectionsPerTenant.</summary>
    public int? MaxConnections { get; set; }

    /// <summary>Largest envelope the tenant's clients may send (at most Relay:MaxMessageBytes).</summary>
    public int? MaxMessageBytes { get; set; }
}
