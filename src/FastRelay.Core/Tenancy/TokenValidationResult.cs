using System.Diagnostics.CodeAnalysis;

namespace FastRelay.Core.Tenancy;

/// <summary>The outcome of validating a tenant token: the claims with compiled patterns, or a precise error.</summary>
public sealed class TokenValidationResult
{
    private TokenValidationResult(TokenError error, string? message, TenantTokenClaims? claims, TopicPatternSet? publish, TopicPatternSet? subscribe)
    {
        Error = error;
        Message = message;
        Claims = claims;
        Publish = publish;
        Subscribe = subscribe;
    }

    public TokenError Error { get; }

    /// <summary>Why the token was refused, for logs and the client's ERROR reason; null when valid.</summary>
    public string? Message { get; }

    public TenantTokenClaims? Claims { get; }

    /// <summary>The compiled 'publish' patterns.</summary>
    public TopicPatternSet? Publish { get; }

    /// <summary>The compiled 'subscribe' patterns.</summary>
    public TopicPatternSet? Subscribe { get; }

    [MemberNotNullWhen(true, nameof(Claims), nameof(Publish), nameof(Subscribe))]
    [MemberNotNullWhen(false, nameof(Message))]
    public bool IsValid => Error == TokenError.None;

    internal static TokenValidationResult Success(TenantTokenClaims claims, TopicPatternSet publish, TopicPatternSet subscribe) =>
        new(TokenError.None, null, claims, publish, subscribe);

    internal static TokenValidationResult Failure(TokenError error, string message) => new(error, message, null, null, null);

    public override string ToString() => IsValid ? $"valid: tenant '{Claims.Tenant}', client '{Claims.ClientId}'" : $"{Error}: {Message}";
}
