using System.Text;
using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Tests.Tenancy;

public class TenantTokenTests
{
    private const string AcmeSecret = "acme-secret-0123456789-0123456789";
    private const string AcmeNewSecret = "acme-rotated-secret-abcdefghijklmnop";
    private const string GlobexSecret = "globex-secret-0123456789-012345678";

    private static readonly DateTimeOffset Now = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private readonly ManualTimeProvider _clock = new(Now);

    private TokenValidator Validator(params TenantOptions[] tenants) =>
        TokenValidator.FromOptions(new TenancyOptions { Tenants = [.. tenants] }, _clock);

    private TokenValidator DefaultValidator() => Validator(
        new TenantOptions { Name = "acme", Secrets = [AcmeSecret] },
        new TenantOptions { Name = "globex", Secrets = [GlobexSecret] });

    private static TenantTokenClaims Claims(
        DateTimeOffset? expires = null, DateTimeOffset? notBefore = null, DateTimeOffset? issued = null,
        string[]? publish = null, string[]? subscribe = null) => new()
        {
            ClientId = "agent-7",
            Publish = publish ?? ["orders.>", "chat.*"],
            Subscribe = subscribe ?? ["chat.*", "status"],
            IssuedAt = issued ?? Now,
            ExpiresAt = expires ?? Now.AddHours(1),
            NotBefore = notBefore,
        };

    private static string Payload(string tenant = "acme", string sub = "agent-7", long? exp = null, long? iat = null, string publish = """["a.>"]""", string subscribe = """["b.*"]""", string extra = "")
    {
        var parts = new List<string>();
        if (tenant != "-") parts.Add($"\"tenant\":\"{tenant}\"");
        if (sub != "-") parts.Add($"\"sub\":\"{sub}\"");
        if (publish != "-") parts.Add($"\"publish\":{publish}");
        if (subscribe != "-") parts.Add($"\"subscribe\":{subscribe}");
        if (iat != -1) parts.Add($"\"iat\":{iat ?? Now.ToUnixTimeSeconds()}");
        if (exp != -1) parts.Add($"\"exp\":{exp ?? Now.AddHours(1).ToUnixTimeSeconds()}");
        if (extra.Length > 0) parts.Add(extra);
        return "{" + string.Join(',', parts) + "}";
    }

    [Fact]
    public void A_minted_token_round_trips_with_compiled_patterns()
    {
        var claims = Claims(notBefore: Now.AddMinutes(-1));
        string token = TokenIssuer.Mint("acme", Encoding.UTF8.GetBytes(AcmeSecret), claims);

        var result = DefaultValidator().Validate(token);

        Assert.True(result.IsValid, result.Message);
        Assert.Equal(TokenError.None, result.Error);
        Assert.Null(result.Message);
        Assert.Equal("acme", result.Claims.Tenant);
        Assert.Equal("agent-7", result.Claims.ClientId);
        Assert.Equal(["orders.>", "chat.*"], result.Claims.Publish);
        Assert.Equal(["chat.*", "status"], result.Claims.Subscribe);
        Assert.Equal(Now, result.Claims.IssuedAt);
        Assert.Equal(Now.AddHours(1), result.Claims.ExpiresAt);
        Assert.Equal(Now.AddMinutes(-1), result.Claims.NotBefore);
        Assert.True(result.Publish.Allows("orders.eu.created"u8));
        Assert.False(result.Publish.Allows("status"u8));
        Assert.True(result.Subscribe.Allows("status"u8));
        Assert.True(result.Subscribe.AllowsPattern(TopicPattern.Parse("chat.*")));
        Assert.False(result.Subscribe.AllowsPattern(TopicPattern.Parse("chat.>")));
    }

    [Fact]
    public void A_minted_token_is_a_standard_hs256_jwt_without_padding()
    {
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims());
        string[] parts = token.Split('.');
        Assert.Equal(3, parts.Length);
        Assert.DoesNotContain('=', token);
        Assert.DoesNotContain('+', token);
        Assert.DoesNotContain('/', token);
        Assert.Equal("""{"alg":"HS256","typ":"JWT"}""", Encoding.UTF8.GetString(HandMadeTokens.FromBase64Url(parts[0])));

        string payload = Encoding.UTF8.GetString(HandMadeTokens.FromBase64Url(parts[1]));
        Assert.Contains("\"tenant\":\"acme\"", payload);
        Assert.Contains("\"sub\":\"agent-7\"", payload);
        Assert.Contains($"\"exp\":{Now.AddHours(1).ToUnixTimeSeconds()}", payload);
        Assert.Contains($"\"iat\":{Now.ToUnixTimeSeconds()}", payload);
        Assert.DoesNotContain("nbf", payload);

        // The signature is what an independent HMAC-SHA256 implementation computes.
        string resigned = HandMadeTokens.Sign(
            Encoding.UTF8.GetString(HandMadeTokens.FromBase64Url(parts[0])), payload, AcmeSecret);
        Assert.Equal(token, resigned);
    }

    [Fact]
    public void A_token_from_another_issuer_with_extra_claims_and_no_typ_is_accepted()
    {
        string token = HandMadeTokens.Sign("""{"alg":"HS256"}""", Payload(extra: "\"aud\":\"relay\",\"scope\":{\"x\":[1,2]}"), AcmeSecret);
        var result = DefaultValidator().Validate(token);
        Assert.True(result.IsValid, result.Message);
        Assert.Equal("agent-7", result.Claims.ClientId);
    }

    [Fact]
    public void A_fractional_expiry_is_read_as_whole_seconds()
    {
        long exp = Now.AddMinutes(5).ToUnixTimeSeconds();
        var result = DefaultValidator().Validate(HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload().Replace($"\"exp\":{Now.AddHours(1).ToUnixTimeSeconds()}", $"\"exp\":{exp}.75"), AcmeSecret));
        Assert.True(result.IsValid, result.Message);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(exp), result.Claims.ExpiresAt);
    }

    [Fact]
    public void An_expired_token_is_refused_once_the_leeway_has_passed()
    {
        var validator = DefaultValidator();
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims(expires: Now.AddMinutes(10)));

        _clock.Set(Now.AddMinutes(10).AddSeconds(29));
        Assert.True(validator.Validate(token).IsValid);

        _clock.Set(Now.AddMinutes(10).AddSeconds(30));
        var result = validator.Validate(token);
        Assert.Equal(TokenError.Expired, result.Error);
        Assert.Contains("expired at 2030-01-02T03:14:05", result.Message);
    }

    [Fact]
    public void The_leeway_is_configurable()
    {
        var validator = TokenValidator.FromOptions(
            new TenancyOptions { TokenLeewaySeconds = 0, Tenants = [new() { Name = "acme", Secrets = [AcmeSecret] }] }, _clock);
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims(expires: Now.AddSeconds(1)));
        Assert.Equal(TimeSpan.Zero, validator.Leeway);
        Assert.True(validator.Validate(token).IsValid);
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TokenError.Expired, validator.Validate(token).Error);
    }

    [Fact]
    public void A_token_not_yet_valid_is_refused_until_its_nbf_minus_the_leeway()
    {
        var validator = DefaultValidator();
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims(notBefore: Now.AddSeconds(60)));

        var result = validator.Validate(token);
        Assert.Equal(TokenError.NotYetValid, result.Error);
        Assert.Contains("not valid before", result.Message);

        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.True(validator.Validate(token).IsValid);
    }

    [Fact]
    public void A_token_issued_in_the_future_is_refused()
    {
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims(issued: Now.AddMinutes(5)));
        var result = DefaultValidator().Validate(token);
        Assert.Equal(TokenError.NotYetValid, result.Error);
        Assert.Contains("issued in the future", result.Message);
    }

    [Fact]
    public void A_token_signed_with_an_unknown_secret_is_refused()
    {
        string token = TokenIssuer.Mint("acme", "not-the-configured-secret-0123456789", Claims());
        var result = DefaultValidator().Validate(token);
        Assert.Equal(TokenError.BadSignature, result.Error);
        Assert.Contains("tenant 'acme'", result.Message);
    }

    [Fact]
    public void A_token_for_one_tenant_signed_with_another_tenants_secret_is_refused()
    {
        string token = TokenIssuer.Mint("acme", GlobexSecret, Claims());
        Assert.Equal(TokenError.BadSignature, DefaultValidator().Validate(token).Error);

        string forged = TokenIssuer.Mint("globex", AcmeSecret, Claims());
        Assert.Equal(TokenError.BadSignature, DefaultValidator().Validate(forged).Error);
    }

    [Fact]
    public void An_unknown_tenant_is_refused()
    {
        string token = TokenIssuer.Mint("initech", AcmeSecret, Claims());
        var result = DefaultValidator().Validate(token);
        Assert.Equal(TokenError.UnknownTenant, result.Error);
        Assert.Contains("'initech'", result.Message);

        string badName = HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload(tenant: "ACME"), AcmeSecret);
        Assert.Equal(TokenError.UnknownTenant, DefaultValidator().Validate(badName).Error);
    }

    [Theory]
    [InlineData("""{"alg":"none","typ":"JWT"}""", "'none'")]
    [InlineData("""{"alg":"None"}""", "'None'")]
    [InlineData("""{"alg":"hs256"}""", "'hs256'")]
    [InlineData("""{"alg":"HS512"}""", "'HS512'")]
    [InlineData("""{"alg":"RS256"}""", "'RS256'")]
    [InlineData("""{"alg":""}""", "''")]
    public void Any_algorithm_but_hs256_is_refused(string header, string named)
    {
        var validator = DefaultValidator();
        string payload = Payload();

        var unsigned = validator.Validate(HandMadeTokens.Unsigned(header, payload));
        Assert.Equal(TokenError.UnsupportedAlgorithm, unsigned.Error);
        Assert.Contains(named, unsigned.Message);

        // Even with a signature that HS256 with the right secret would accept.
        var signed = validator.Validate(HandMadeTokens.Sign(header, payload, AcmeSecret));
        Assert.Equal(TokenError.UnsupportedAlgorithm, signed.Error);
    }

    [Fact]
    public void An_hs256_token_without_a_signature_is_refused()
    {
        var result = DefaultValidator().Validate(HandMadeTokens.Unsigned(HandMadeTokens.Hs256Header, Payload()));
        Assert.Equal(TokenError.BadSignature, result.Error);
        Assert.Contains("missing", result.Message);
    }

    [Fact]
    public void A_tampered_payload_is_refused()
    {
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims(publish: ["orders.eu"]));
        string[] parts = token.Split('.');
        string payload = Encoding.UTF8.GetString(HandMadeTokens.FromBase64Url(parts[1]));
        string widened = payload.Replace("\"orders.eu\"", "\">\"");
        Assert.NotEqual(payload, widened);

        string tampered = parts[0] + "." + HandMadeTokens.Base64Url(widened) + "." + parts[2];
        var result = DefaultValidator().Validate(tampered);
        Assert.Equal(TokenError.BadSignature, result.Error);
    }

    [Fact]
    public void A_tampered_signature_is_refused()
    {
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims());
        char[] chars = token.ToCharArray();
        int at = token.LastIndexOf('.') + 5;
        chars[at] = chars[at] == 'A' ? 'B' : 'A';
        Assert.Equal(TokenError.BadSignature, DefaultValidator().Validate(new string(chars)).Error);

        // The same 32 bytes spelled with different trailing bits is not the token that was signed.
        int last = token.Length - 1;
        chars = token.ToCharArray();
        string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        chars[last] = alphabet[alphabet.IndexOf(chars[last]) ^ 1];
        Assert.Equal(TokenError.BadSignature, DefaultValidator().Validate(new string(chars)).Error);

        Assert.Equal(TokenError.BadSignature, DefaultValidator().Validate(token[..^2]).Error);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("garbage", "three base64url parts")]
    [InlineData("a.b", "three base64url parts")]
    [InlineData("a.b.c.d", "three base64url parts")]
    [InlineData("....", "three base64url parts")]
    [InlineData("..", "header is not base64url")]
    [InlineData("!!!.e30.AAAA", "header is not base64url")]
    [InlineData("eyJ hbGc.e30.AAAA", "header is not base64url")]
    [InlineData("e30=.e30.AAAA", "header is not base64url")]
    [InlineData("bm90IGpzb24.e30.AAAA", "header is not valid JSON")]
    [InlineData("W10.e30.AAAA", "header is not a JSON object")]
    [InlineData("e30.e30.AAAA", "header has no 'alg'")]
    public void Garbage_is_refused_as_malformed(string token, string expected)
    {
        var result = DefaultValidator().Validate(token);
        Assert.Equal(TokenError.Malformed, result.Error);
        Assert.Contains(expected, result.Message);
    }

    [Fact]
    public void Random_bytes_and_oversized_tokens_are_refused_without_throwing()
    {
        var validator = DefaultValidator();
        var random = new Random(1234);
        for (int i = 0; i < 500; i++)
        {
            byte[] bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            Assert.False(validator.Validate(bytes).IsValid);
        }

        var huge = validator.Validate(new string('A', 5000) + ".e30.AAAA");
        Assert.Equal(TokenError.Malformed, huge.Error);
        Assert.Contains("limit is 4096", huge.Message);
    }

    [Fact]
    public void Single_character_mutations_of_a_valid_token_are_all_refused()
    {
        var validator = DefaultValidator();
        string token = TokenIssuer.Mint("acme", AcmeSecret, Claims());
        var random = new Random(42);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
        for (int i = 0; i < 2000; i++)
        {
            char[] chars = token.ToCharArray();
            int at = random.Next(chars.Length);
            char replacement = alphabet[random.Next(alphabet.Length)];
            if (chars[at] == replacement)
            {
                continue;
            }

            chars[at] = replacement;
            var result = validator.Validate(new string(chars));
            Assert.False(result.IsValid, $"mutation at {at} to '{replacement}' was accepted");
        }
    }

    [Theory]
    [InlineData("tenant")]
    [InlineData("sub")]
    [InlineData("publish")]
    [InlineData("subscribe")]
    [InlineData("iat")]
    [InlineData("exp")]
    public void A_missing_required_claim_is_refused_by_name(string claim)
    {
        string payload = claim switch
        {
            "tenant" => Payload(tenant: "-"),
            "sub" => Payload(sub: "-"),
            "publish" => Payload(publish: "-"),
            "subscribe" => Payload(subscribe: "-"),
            "iat" => Payload(iat: -1),
            _ => Payload(exp: -1),
        };
        var result = DefaultValidator().Validate(HandMadeTokens.Sign(HandMadeTokens.Hs256Header, payload, AcmeSecret));
        Assert.Equal(TokenError.Malformed, result.Error);
        Assert.Equal($"the required claim '{claim}' is missing", result.Message);
    }

    [Theory]
    [InlineData("""{"tenant":"acme","tenant":"acme"}""", "claim 'tenant' appears twice")]
    [InlineData("""{"tenant":7}""", "claim 'tenant' must be a string")]
    [InlineData("""{"tenant":"acme","sub":"a","publish":"a.>"}""", "claim 'publish' must be an array of strings")]
    [InlineData("""{"tenant":"acme","sub":"a","subscribe":["a",1]}""", "claim 'subscribe' must be an array of strings")]
    [InlineData("""{"tenant":"acme","exp":"soon"}""", "claim 'exp' must be a number")]
    [InlineData("""{"tenant":"acme","exp":1e300}""", "claim 'exp' is out of range")]
    [InlineData("""{"tenant":"acme","iat":-5}""", "claim 'iat' is out of range")]
    [InlineData("""{"tenant":"acme"} {}""", "not valid JSON")]
    [InlineData("""{"tenant":"acme",}""", "not valid JSON")]
    [InlineData("""["acme"]""", "payload is not a JSON object")]
    [InlineData("""{"tenant":"\ud800"}""", "not valid JSON")]
    public void A_mistyped_claim_or_bad_payload_json_is_malformed(string payload, string expected)
    {
        var result = DefaultValidator().Validate(HandMadeTokens.Sign(HandMadeTokens.Hs256Header, payload, AcmeSecret));
        Assert.Equal(TokenError.Malformed, result.Error);
        Assert.Contains(expected, result.Message);
    }

    [Fact]
    public void An_empty_or_oversized_client_id_is_malformed()
    {
        var validator = DefaultValidator();
        Assert.Contains("claim 'sub' is 0 bytes", validator.Validate(HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload(sub: ""), AcmeSecret)).Message);
        Assert.Contains("claim 'sub' is 129 bytes", validator.Validate(HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload(sub: new string('x', 129)), AcmeSecret)).Message);
    }

    [Fact]
    public void An_invalid_pattern_in_a_claim_is_refused_naming_claim_and_index()
    {
        string token = HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload(subscribe: """["ok.*","bad..topic"]"""), AcmeSecret);
        var result = DefaultValidator().Validate(token);
        Assert.Equal(TokenError.InvalidPattern, result.Error);
        Assert.Contains("claim 'subscribe'[1] 'bad..topic'", result.Message);
        Assert.Contains("empty segment", result.Message);

        string gt = HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload(publish: """["a.>.b"]"""), AcmeSecret);
        Assert.Contains("claim 'publish'[0]", DefaultValidator().Validate(gt).Message);
    }

    [Fact]
    public void An_empty_pattern_list_grants_nothing()
    {
        var result = DefaultValidator().Validate(TokenIssuer.Mint("acme", AcmeSecret, Claims(publish: [], subscribe: [])));
        Assert.True(result.IsValid, result.Message);
        Assert.True(result.Publish.IsEmpty);
        Assert.False(result.Publish.Allows("a"u8));
        Assert.False(result.Subscribe.AllowsPattern(TopicPattern.Parse("a")));
    }

    [Fact]
    public void Key_rotation_accepts_any_listed_secret_and_drops_a_removed_one()
    {
        string oldToken = TokenIssuer.Mint("acme", AcmeSecret, Claims());
        string newToken = TokenIssuer.Mint("acme", AcmeNewSecret, Claims());

        var during = Validator(new TenantOptions { Name = "acme", Secrets = [AcmeNewSecret, AcmeSecret] });
        Assert.True(during.Validate(oldToken).IsValid);
        Assert.True(during.Validate(newToken).IsValid);

        var after = Validator(new TenantOptions { Name = "acme", Secrets = [AcmeNewSecret] });
        Assert.Equal(TokenError.BadSignature, after.Validate(oldToken).Error);
        Assert.True(after.Validate(newToken).IsValid);
    }

    [Fact]
    public void A_validator_with_a_lookup_ignores_secrets_shorter_than_32_bytes()
    {
        byte[] shortSecret = Encoding.UTF8.GetBytes("short");
        var validator = new TokenValidator(t => t == "acme" ? [shortSecret] : null, _clock);
        string token = HandMadeTokens.Sign(HandMadeTokens.Hs256Header, Payload(), "short");
        Assert.Equal(TokenError.BadSignature, validator.Validate(token).Error);
        Assert.Equal(TokenValidator.DefaultLeeway, validator.Leeway);
    }

    [Fact]
    public void FromOptions_refuses_an_invalid_configuration()
    {
        var options = new TenancyOptions { Tenants = [new() { Name = "acme", Secrets = ["short"] }] };
        Assert.Throws<TenancyConfigurationException>(() => TokenValidator.FromOptions(options, _clock));
    }

    [Fact]
    public void Mint_refuses_bad_arguments()
    {
        Assert.Contains("at least 32", Assert.Throws<ArgumentException>(() => TokenIssuer.Mint("acme", "short", Claims())).Message);
        Assert.Contains("invalid", Assert.Throws<ArgumentException>(() => TokenIssuer.Mint("Acme", AcmeSecret, Claims())).Message);
        Assert.Contains("not a valid topic pattern", Assert.Throws<ArgumentException>(() => TokenIssuer.Mint("acme", AcmeSecret, Claims(publish: ["a*"]))).Message);
        var otherTenant = new TenantTokenClaims { Tenant = "globex", ClientId = "c", IssuedAt = Now, ExpiresAt = Now.AddHours(1) };
        Assert.Contains("globex", Assert.Throws<ArgumentException>(() => TokenIssuer.Mint("acme", AcmeSecret, otherTenant)).Message);
        var noClient = new TenantTokenClaims { ClientId = "", IssuedAt = Now, ExpiresAt = Now.AddHours(1) };
        Assert.Throws<ArgumentException>(() => TokenIssuer.Mint("acme", AcmeSecret, noClient));
    }
}
