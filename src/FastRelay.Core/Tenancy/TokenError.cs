namespace FastRelay.Core.Tenancy;

/// <summary>Why a tenant token was refused.</summary>
public enum TokenError : byte
{
    /// <summary>The token is valid.</summary>
    None,
    /// <summary>Not three base64url parts, bad JSON, a missing or mistyped claim, or too long.</summary>
    Malformed,
    /// <summary>The header names an algorithm other than HS256 (including 'none').</summary>
    UnsupportedAlgorithm,
    /// <summary>The tenant claim names no configured tenant.</summary>
    UnknownTenant,
    /// <summary>The signature matches none of the tenant's secrets.</summary>
    BadSignature,
    /// <summary>The expiry (plus leeway) has passed.</summary>
    Expired,
    /// <summary>'nbf' or 'iat' lies in the future (beyond the leeway).</summary>
    NotYetValid,
    /// <summary>A 'publish' or 'subscribe' entry is not a valid topic pattern.</summary>
    InvalidPattern,
}
