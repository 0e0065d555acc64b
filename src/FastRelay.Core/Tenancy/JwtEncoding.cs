using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;

namespace FastRelay.Core.Tenancy;

/// <summary>The JWS compact form as tenant tokens use it: strict unpadded base64url and an HS256 signature.</summary>
internal static class JwtEncoding
{
    /// <summary>base64url of <c>{"alg":"HS256","typ":"JWT"}</c>.</summary>
    public const string Hs256Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

    public const string Hs256 = "HS256";

    public const int SignatureBytes = HMACSHA256.HashSizeInBytes;

    /// <summary>Claim names in the payload.</summary>
    public const string Tenant = "tenant", Subject = "sub", Publish = "publish", Subscribe = "subscribe",
        Expires = "exp", IssuedAt = "iat", NotBefore = "nbf";

    /// <summary>Decodes one part. Refuses padding, whitespace and anything outside [A-Za-z0-9_-], which .NET's decoder would tolerate.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> part, Span<byte> destination, out int written)
    {
        written = 0;
        if (part.IndexOfAnyExcept(Base64UrlAlphabet) >= 0 || part.Length % 4 == 1)
        {
            return false;
        }

        return Base64Url.DecodeFromUtf8(part, destination, out _, out written) == OperationStatus.Done;
    }

    /// <summary>Decodes a signature and insists the text is the canonical encoding (no stray trailing bits), so a token has one form.</summary>
    public static bool TryDecodeCanonicalSignature(ReadOnlySpan<byte> part, Span<byte> signature)
    {
        if (part.Length != Base64Url.GetEncodedLength(SignatureBytes) || !TryDecode(part, signature, out int written) || written != SignatureBytes)
        {
            return false;
        }

        Span<byte> reencoded = stackalloc byte[part.Length];
        Base64Url.EncodeToUtf8(signature, reencoded, out _, out _);
        return reencoded.SequenceEqual(part);
    }

    public static int MaxDecodedLength(int encodedLength) => Base64Url.GetMaxDecodedLength(encodedLength);

    private static readonly SearchValues<byte> Base64UrlAlphabet =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"u8);
}
