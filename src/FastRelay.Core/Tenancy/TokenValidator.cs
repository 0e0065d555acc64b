using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FastRelay.Protocol;

namespace FastRelay.Core.Tenancy;

/// <summary>Checks a tenant token from HELLO: structure, algorithm (HS256 only), signature against the tenant's secrets, times, patterns.</summary>
/// <remarks>
/// Checks run in this order, and the first failure is the answer: size and three base64url parts; header JSON and
/// 'alg'; payload JSON and the 'tenant' claim; tenant lookup; signature (any of the tenant's secrets, compared in
/// fixed time); the other required claims; 'exp', 'nbf' and 'iat' against the clock with the leeway; patterns.
/// Claims other than 'tenant' are trusted for nothing until the signature has been checked.
/// </remarks>
public sealed class TokenValidator
{
    public static readonly TimeSpan DefaultLeeway = TimeSpan.FromSeconds(TenancyOptions.DefaultTokenLeewaySeconds);

    private readonly Func<string, IReadOnlyList<byte[]>?> _secretsForTenant;
    private readonly TimeProvider _clock;

    /// <param name="secretsForTenant">Tenant name → its secrets (UTF-8 bytes of the configured strings); null or empty
    /// for an unknown tenant. Secrets shorter than <see cref="TenantOptions.MinSecretBytes"/> never validate anything.</param>
    /// <param name="clock">The time source for 'exp', 'nbf' and 'iat'.</param>
    /// <param name="leeway">Tolerated clock skew; <see cref="DefaultLeeway"/> (30 s) when null.</param>
    public TokenValidator(Func<string, IReadOnlyList<byte[]>?> secretsForTenant, TimeProvider clock, TimeSpan? leeway = null)
    {
        ArgumentNullException.ThrowIfNull(secretsForTenant);
        ArgumentNullException.ThrowIfNull(clock);
        TimeSpan l = leeway ?? DefaultLeeway;
        ArgumentOutOfRangeException.ThrowIfLessThan(l, TimeSpan.Zero, nameof(leeway));
        _secretsForTenant = secretsForTenant;
        _clock = clock;
        Leeway = l;
    }

    /// <summary>Builds a validator over the configured tenants; throws <see cref="TenancyConfigurationException"/> if the options are invalid.</summary>
    public static TokenValidator FromOptions(TenancyOptions options, TimeProvider clock)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var table = options.BuildSecretTable();
        return new TokenValidator(
            tenant => table.TryGetValue(tenant, out byte[][]? secrets) ? secrets : null,
            clock,
            TimeSpan.FromSeconds(options.TokenLeewaySeconds));
    }

    public TimeSpan Leeway { get; }

    /// <summary>Validates a token given as a string (its UTF-8 bytes).</summary>
    public TokenValidationResult Validate(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return Validate(Encoding.UTF8.GetBytes(token));
    }

    /// <summary>Validates <paramref name="token"/> (the JWS compact form as bytes). Never throws for bad input.</summary>
    public TokenValidationResult Validate(ReadOnlySpan<byte> token)
    {
        if (token.IsEmpty)
        {
            return Malformed("the token is empty");
        }

        if (token.Length > ProtocolLimits.MaxTokenBytes)
        {
            return Malformed($"the token is {token.Length} bytes; the limit is {ProtocolLimits.MaxTokenBytes}");
        }

        int dots = token.Count((byte)'.');
        if (dots != 2)
        {
            return Malformed($"a token has three base64url parts separated by '.', this one has {dots + 1}");
        }

        int firstDot = token.IndexOf((byte)'.');
        int secondDot = firstDot + 1 + token[(firstDot + 1)..].IndexOf((byte)'.');
        ReadOnlySpan<byte> headerPart = token[..firstDot];
        ReadOnlySpan<byte> payloadPart = token[(firstDot + 1)..secondDot];
        ReadOnlySpan<byte> signaturePart = token[(secondDot + 1)..];

        byte[] scratch = ArrayPool<byte>.Shared.Rent(JwtEncoding.MaxDecodedLength(token.Length));
        try
        {
            // Header: the algorithm decides everything else, so it is checked before anything in the payload.
            if (headerPart.IsEmpty || !JwtEncoding.TryDecode(headerPart, scratch, out int headerLength))
            {
                return Malformed("the header is not base64url");
            }

            if (!System.Text.Unicode.Utf8.IsValid(scratch.AsSpan(0, headerLength)))
            {
                return Malformed("the header is not valid UTF-8");
            }

            string? headerError = ReadHeader(scratch.AsSpan(0, headerLength), out string? alg);
            if (headerError is not null)
            {
                return Malformed(headerError);
            }

            if (alg != JwtEncoding.Hs256)
            {
                return TokenValidationResult.Failure(TokenError.UnsupportedAlgorithm, $"alg '{alg}' is not supported; tokens must be signed with HS256");
            }

            Span<byte> signature = stackalloc byte[JwtEncoding.SignatureBytes];
            if (signaturePart.IsEmpty)
            {
                return TokenValidationResult.Failure(TokenError.BadSignature, "the signature is missing");
            }

            if (!JwtEncoding.TryDecodeCanonicalSignature(signaturePart, signature))
            {
                return TokenValidationResult.Failure(TokenError.BadSignature, $"the signature is not {JwtEncoding.SignatureBytes} bytes of canonical base64url");
            }

            if (payloadPart.IsEmpty || !JwtEncoding.TryDecode(payloadPart, scratch, out int payloadLength))
            {
                return Malformed("the payload is not base64url");
            }

            if (!System.Text.Unicode.Utf8.IsValid(scratch.AsSpan(0, payloadLength)))
            {
                return Malformed("the payload is not valid UTF-8");
            }

            var claims = new RawClaims();
            string? payloadError = ReadPayload(scratch.AsSpan(0, payloadLength), ref claims);
            if (payloadError is not null)
            {
                return Malformed(payloadError);
            }

            if (claims.Tenant is null)
            {
                return MissingClaim(JwtEncoding.Tenant);
            }

            IReadOnlyList<byte[]>? secrets = TenantName.IsValid(claims.Tenant) ? _secretsForTenant(claims.Tenant) : null;
            if (secrets is null || secrets.Count == 0)
            {
                return TokenValidationResult.Failure(TokenError.UnknownTenant, $"tenant '{claims.Tenant}' is not configured");
            }

            if (!SignatureMatches(token[..secondDot], signature, secrets))
            {
                return TokenValidationResult.Failure(TokenError.BadSignature, $"the signature matches no secret of tenant '{claims.Tenant}'");
            }

            return CheckSignedClaims(in claims);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private TokenValidationResult CheckSignedClaims(in RawClaims claims)
    {
        if (claims.Subject is null) return MissingClaim(JwtEncoding.Subject);
        if (claims.Publish is null) return MissingClaim(JwtEncoding.Publish);
        if (claims.Subscribe is null) return MissingClaim(JwtEncoding.Subscribe);
        if (claims.IssuedAt is not { } iat) return MissingClaim(JwtEncoding.IssuedAt);
        if (claims.Expires is not { } exp) return MissingClaim(JwtEncoding.Expires);

        int subjectBytes = Encoding.UTF8.GetByteCount(claims.Subject);
        if (subjectBytes is 0 or > ProtocolLimits.MaxIdBytes)
        {
            return Malformed($"claim 'sub' is {subjectBytes} bytes; a client id is 1 to {ProtocolLimits.MaxIdBytes} bytes");
        }

        DateTimeOffset now = _clock.GetUtcNow();
        if (now >= exp + Leeway)
        {
            return TokenValidationResult.Failure(TokenError.Expired, $"the token expired at {exp:O} (now {now:O}, leeway {Leeway.TotalSeconds:0} s)");
        }

        if (claims.NotBefore is { } nbf && now + Leeway < nbf)
        {
            return TokenValidationResult.Failure(TokenError.NotYetValid, $"the token is not valid before {nbf:O} (now {now:O}, leeway {Leeway.TotalSeconds:0} s)");
        }

        if (now + Leeway < iat)
        {
            return TokenValidationResult.Failure(TokenError.NotYetValid, $"the token is issued in the future, at {iat:O} (now {now:O}, leeway {Leeway.TotalSeconds:0} s)");
        }

        if (!TryCompile(claims.Publish, JwtEncoding.Publish, out var publish, out var error) ||
            !TryCompile(claims.Subscribe, JwtEncoding.Subscribe, out var subscribe, out error))
        {
            return TokenValidationResult.Failure(TokenError.InvalidPattern, error);
        }

        var result = new TenantTokenClaims
        {
            Tenant = claims.Tenant!,
            ClientId = claims.Subject,
            Publish = claims.Publish,
            Subscribe = claims.Subscribe,
            IssuedAt = iat,
            ExpiresAt = exp,
            NotBefore = claims.NotBefore,
        };
        return TokenValidationResult.Success(result, publish, subscribe);
    }

    private static bool SignatureMatches(ReadOnlySpan<byte> signedPart, ReadOnlySpan<byte> signature, IReadOnlyList<byte[]> secrets)
    {
        Span<byte> expected = stackalloc byte[JwtEncoding.SignatureBytes];
        bool match = false;
        for (int i = 0; i < secrets.Count; i++)
        {
            byte[]? secret = secrets[i];
            if (secret is null || secret.Length < TenantOptions.MinSecretBytes)
            {
                continue;
            }

            HMACSHA256.HashData(secret, signedPart, expected);
            // No early exit: the time taken does not say which secret matched.
            match |= CryptographicOperations.FixedTimeEquals(expected, signature);
        }

        return match;
    }

    private static bool TryCompile(string[] patterns, string claim, out TopicPatternSet set, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        var compiled = new TopicPattern[patterns.Length];
        for (int i = 0; i < patterns.Length; i++)
        {
            if (!TopicPattern.TryParse(patterns[i], out var pattern, out string? why))
            {
                set = TopicPatternSet.None;
                error = $"claim '{claim}'[{i}] '{patterns[i]}' is not a valid topic pattern: {why}";
                return false;
            }

            compiled[i] = pattern;
        }

        set = new TopicPatternSet(compiled);
        error = null;
        return true;
    }

    private static string? ReadHeader(ReadOnlySpan<byte> json, out string? alg)
    {
        alg = null;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return "the header is not a JSON object";
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("alg"u8))
                {
                    if (alg is not null) return "the header has 'alg' twice";
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String) return "the header's 'alg' is not a string";
                    alg = reader.GetString()!;
                }
                else if (reader.ValueTextEquals("crit"u8))
                {
                    return "the header has critical extensions ('crit'), which are not supported";
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return "the header is not one JSON object";
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return $"the header is not valid JSON ({ex.Message})";
        }

        return alg is null ? "the header has no 'alg'" : null;
    }

    private static string? ReadPayload(ReadOnlySpan<byte> json, ref RawClaims claims)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return "the payload is not a JSON object";
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string name = reader.GetString()!;
                reader.Read();
                string? error = name switch
                {
                    JwtEncoding.Tenant => ReadString(ref reader, name, ref claims.Tenant),
                    JwtEncoding.Subject => ReadString(ref reader, name, ref claims.Subject),
                    JwtEncoding.Publish => ReadStringArray(ref reader, name, ref claims.Publish),
                    JwtEncoding.Subscribe => ReadStringArray(ref reader, name, ref claims.Subscribe),
                    JwtEncoding.Expires => ReadTime(ref reader, name, ref claims.Expires),
                    JwtEncoding.IssuedAt => ReadTime(ref reader, name, ref claims.IssuedAt),
                    JwtEncoding.NotBefore => ReadTime(ref reader, name, ref claims.NotBefore),
                    _ => Skip(ref reader),
                };
                if (error is not null)
                {
                    return error;
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return "the payload is not one JSON object";
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return $"the payload is not valid JSON ({ex.Message})";
        }

        return null;
    }

    private static string? Skip(ref Utf8JsonReader reader)
    {
        reader.Skip();
        return null;
    }

    private static string? ReadString(ref Utf8JsonReader reader, string name, ref string? value)
    {
        if (value is not null) return Duplicate(name);
        if (reader.TokenType != JsonTokenType.String) return $"claim '{name}' must be a string";
        value = reader.GetString()!;
        return null;
    }

    private static string? ReadStringArray(ref Utf8JsonReader reader, string name, ref string[]? value)
    {
        if (value is not null) return Duplicate(name);
        if (reader.TokenType != JsonTokenType.StartArray) return $"claim '{name}' must be an array of strings";
        var items = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String) return $"claim '{name}' must be an array of strings";
            items.Add(reader.GetString()!);
        }

        value = items.ToArray();
        return null;
    }

    private static string? ReadTime(ref Utf8JsonReader reader, string name, ref DateTimeOffset? value)
    {
        if (value is not null) return Duplicate(name);
        if (reader.TokenType != JsonTokenType.Number) return $"claim '{name}' must be a number of seconds since the Unix epoch";

        // NumericDate may carry a fraction; whole seconds are what matters here.
        long seconds;
        if (!reader.TryGetInt64(out seconds))
        {
            double d = reader.GetDouble();
            if (!double.IsFinite(d) || d < MinUnixSeconds || d > MaxUnixSeconds)
            {
                return $"claim '{name}' is out of range";
            }

            seconds = (long)Math.Floor(d);
        }

        if (seconds is < MinUnixSeconds or > MaxUnixSeconds)
        {
            return $"claim '{name}' is out of range";
        }

        value = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return null;
    }

    private const long MinUnixSeconds = 0;
    private const long MaxUnixSeconds = 253_402_300_799; // 9999-12-31T23:59:59Z

    private static string Duplicate(string name) => $"claim '{name}' appears twice";

    private static TokenValidationResult Malformed(string message) => TokenValidationResult.Failure(TokenError.Malformed, message);

    private static TokenValidationResult MissingClaim(string name) =>
        TokenValidationResult.Failure(TokenError.Malformed, $"the required claim '{name}' is missing");

    private struct RawClaims
    {
        public string? Tenant;
        public string? Subject;
        public string[]? Publish;
        public string[]? Subscribe;
        public DateTimeOffset? Expires;
        public DateTimeOffset? IssuedAt;
        public DateTimeOffset? NotBefore;
    }
}
