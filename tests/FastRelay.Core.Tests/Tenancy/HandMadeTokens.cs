using System.Security.Cryptography;
using System.Text;

namespace FastRelay.Core.Tests.Tenancy;

/// <summary>Builds JWTs from raw JSON without TokenIssuer, as another issuer (or an attacker) would.</summary>
internal static class HandMadeTokens
{
    public const string Hs256Header = """{"alg":"HS256","typ":"JWT"}""";

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string Base64Url(string text) => Base64Url(Encoding.UTF8.GetBytes(text));

    public static byte[] FromBase64Url(string part)
    {
        string s = part.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + (4 - s.Length % 4) % 4, '='));
    }

    public static string Sign(string headerJson, string payloadJson, string secret)
    {
        string signingInput = Base64Url(headerJson) + "." + Base64Url(payloadJson);
        using var hmac = new HMACSHA256(Encoding.UTF8.GetBytes(secret));
        return signingInput + "." + Base64Url(hmac.ComputeHash(Encoding.ASCII.GetBytes(signingInput)));
    }

    public static string Unsigned(string headerJson, string payloadJson) => Base64Url(headerJson) + "." + Base64Url(payloadJson) + ".";
}
