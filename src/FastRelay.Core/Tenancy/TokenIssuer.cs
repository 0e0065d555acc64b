using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace FastRelay.Core.Tenancy;

/// <summary>Mints tenant tokens: HS256-signed JWTs in unpadded base64url.</summary>
public static class TokenIssuer
{
    /// <summary>
    /// Signs <paramref name="claims"/> for <paramref name="tenant"/> with <paramref name="secret"/> (the UTF-8 bytes of
    /// a configured secret, at least <see cref="TenantOptions.MinSecretBytes"/> long). Times are written in whole seconds.
    /// </summary>
    /// <exception cref="ArgumentException">A bad tenant name, a short secret, an empty client id, a claims tenant that
    /// differs from <paramref name="tenant"/>, or an invalid pattern.</exception>
    public static string Mint(string tenant, ReadOnlySpan<byte> secret, TenantTokenClaims claims)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(claims);
        if (!TenantName.IsValid(tenant))
        {
            throw new ArgumentException($"Tenant name '{tenant}' is invalid: it must be {TenantName.Rule}.", nameof(tenant));
        }

        if (secret.Length < TenantOptions.MinSecretBytes)
        {
            throw new ArgumentException($"The secret is {secret.Length} bytes; it must be at least {TenantOptions.MinSecretBytes}.", nameof(secret));
        }

        if (claims.Tenant.Length > 0 && claims.Tenant != tenant)
        {
            throw new ArgumentException($"claims.Tenant is '{claims.Tenant}' but the token is minted for tenant '{tenant}'.", nameof(claims));
        }

        if (string.IsNullOrEmpty(claims.ClientId))
        {
            throw new ArgumentException("claims.ClientId is empty.", nameof(claims));
        }

        ThrowIfInvalidPatterns(claims.Publish, JwtEncoding.Publish);
        ThrowIfInvalidPatterns(claims.Subscribe, JwtEncoding.Subscribe);

        var payload = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(payload))
        {
            json.WriteStartObject();
            json.WriteString(JwtEncoding.Tenant, tenant);
            json.WriteString(JwtEncoding.Subject, claims.ClientId);
            WriteArray(json, JwtEncoding.Publish, claims.Publish);
            WriteArray(json, JwtEncoding.Subscribe, claims.Subscribe);
            json.WriteNumber(JwtEncoding.IssuedAt, claims.IssuedAt.ToUnixTimeSeconds());
            if (claims.NotBefore is { } nbf)
            {
                json.WriteNumber(JwtEncoding.NotBefore, nbf.ToUnixTimeSeconds());
            }

            json.WriteNumber(JwtEncoding.Expires, claims.ExpiresAt.ToUnixTimeSeconds());
            json.WriteEndObject();
        }

        int headerLength = JwtEncoding.Hs256Header.Length;
        int payloadLength = Base64Url.GetEncodedLength(payload.WrittenCount);
        int signingLength = headerLength + 1 + payloadLength;
        int signatureLength = Base64Url.GetEncodedLength(JwtEncoding.SignatureBytes);
        byte[] token = new byte[signingLength + 1 + signatureLength];

        Encoding.ASCII.GetBytes(JwtEncoding.Hs256Header, token);
        token[headerLength] = (byte)'.';
        Base64Url.EncodeToUtf8(payload.WrittenSpan, token.AsSpan(headerLength + 1, payloadLength), out _, out _);
        token[signingLength] = (byte)'.';

        Span<byte> signature = stackalloc byte[JwtEncoding.SignatureBytes];
        HMACSHA256.HashData(secret, token.AsSpan(0, signingLength), signature);
        Base64Url.EncodeToUtf8(signature, token.AsSpan(signingLength + 1), out _, out _);
        return Encoding.ASCII.GetString(token);
    }

    /// <summary>Mints with a secret given as configured: its UTF-8 bytes are the key.</summary>
    public static string Mint(string tenant, string secret, TenantTokenClaims claims)
    {
        ArgumentNullException.ThrowIfNull(secret);
        return Mint(tenant, Encoding.UTF8.GetBytes(secret), claims);
    }

    private static void WriteArray(Utf8JsonWriter json, string name, IReadOnlyList<string> values)
    {
        json.WriteStartArray(name);
        for (int i = 0; i < values.Count; i++)
        {
            json.WriteStringValue(values[i]);
        }

        json.WriteEndArray();
    }

    private static void ThrowIfInvalidPatterns(IReadOnlyList<string> patterns, string claim)
    {
        ArgumentNullException.ThrowIfNull(patterns, claim);
        for (int i = 0; i < patterns.Count; i++)
        {
            if (!TopicPattern.TryParse(patterns[i] ?? "", out _, out string? error))
            {
                throw new ArgumentException($"{claim}[{i}] '{patterns[i]}' is not a valid topic pattern: {error}.", nameof(patterns));
            }
        }
    }
}
