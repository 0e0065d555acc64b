namespace FastRelay.Core.Tenancy;

/// <summary>What a tenant token says about a client: its tenant, its id, the topics it may use and when the token is valid.</summary>
/// <remarks>
/// JSON claim names: <c>tenant</c>, <c>sub</c>, <c>publish</c> and <c>subscribe</c> (arrays of topic patterns),
/// <c>iat</c>, <c>exp</c> and the optional <c>nbf</c> (whole seconds since the Unix epoch). All but <c>nbf</c> are
/// required; an empty <c>publish</c> or <c>subscribe</c> array grants no right.
/// </remarks>
public sealed class TenantTokenClaims
{
    /// <summary>The tenant the client belongs to (<c>tenant</c>).</summary>
    public string Tenant { get; init; } = "";

    /// <summary>The client id (<c>sub</c>), 1..128 UTF-8 bytes.</summary>
    public required string ClientId { get; init; }

    /// <summary>Patterns of the topics the client may publish to (<c>publish</c>).</summary>
    public IReadOnlyList<string> Publish { get; init; } = [];

    /// <summary>Patterns of the topics the client may subscribe to (<c>subscribe</c>).</summary>
    public IReadOnlyList<string> Subscribe { get; init; } = [];

    /// <summary>When the token was issued (<c>iat</c>); minted with second precision.</summary>
    public required DateTimeOffset IssuedAt { get; init; }

    /// <summary>When the token stops being valid (<c>exp</c>); minted with second precision.</summary>
    public required DateTimeOffset ExpiresAt { get; init; }

    /// <summary>When the token starts being valid (<c>nbf</c>), if it says.</summary>
    public DateTimeOffset? NotBefore { get; init; }
}
