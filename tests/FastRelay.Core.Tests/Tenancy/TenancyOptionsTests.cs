using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Tests.Tenancy;

public class TenancyOptionsTests
{
    private static readonly string SecretA = new('a', 32);
    private static readonly string SecretB = new('b', 40);

    private static TenancyOptions Options(params TenantOptions[] tenants) => new() { Tenants = [.. tenants] };

    private static TenantOptions Tenant(string name, params string[] secrets) => new() { Name = name, Secrets = [.. secrets] };

    [Fact]
    public void No_tenants_is_valid_and_needs_no_token()
    {
        var options = new TenancyOptions();
        options.Validate();
        Assert.False(options.RequiresToken);
        Assert.Equal(30, options.TokenLeewaySeconds);
    }

    [Fact]
    public void A_well_formed_configuration_is_valid()
    {
        var options = Options(Tenant("acme", SecretA, SecretB), Tenant("globex-2_eu", SecretB + "x"));
        Assert.Empty(options.GetErrors());
        Assert.True(options.RequiresToken);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Acme")]
    [InlineData("a b")]
    [InlineData("a.b")]
    [InlineData("é")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")] // 65
    public void A_bad_tenant_name_is_refused(string name)
    {
        string error = Assert.Single(Options(Tenant(name, SecretA)).GetErrors());
        Assert.Contains("a-z, 0-9, '_' and '-'", error);
    }

    [Fact]
    public void A_64_character_name_is_accepted()
    {
        Assert.Empty(Options(Tenant(new string('z', 64), SecretA)).GetErrors());
    }

    [Fact]
    public void A_duplicate_tenant_is_refused()
    {
        string error = Assert.Single(Options(Tenant("acme", SecretA), Tenant("acme", SecretB)).GetErrors());
        Assert.Contains("tenant 'acme' (Tenants[1])", error);
        Assert.Contains("used by an earlier tenant", error);
    }

    [Fact]
    public void A_secret_shorter_than_32_utf8_bytes_is_refused()
    {
        string error = Assert.Single(Options(Tenant("acme", new string('s', 31))).GetErrors());
        Assert.Contains("Secrets[0] is 31 bytes", error);
        Assert.Contains("at least 32 UTF-8 bytes", error);

        // Length is counted in UTF-8 bytes, not characters: 11 three-byte characters are 33 bytes.
        Assert.Empty(Options(Tenant("acme", new string('€', 11))).GetErrors());
    }

    [Fact]
    public void A_tenant_without_secrets_is_refused()
    {
        Assert.Contains("at least one secret", Assert.Single(Options(Tenant("acme")).GetErrors()));
    }

    [Fact]
    public void A_secret_shared_by_two_tenants_is_refused()
    {
        string error = Assert.Single(Options(Tenant("acme", SecretA), Tenant("globex", SecretA)).GetErrors());
        Assert.Contains("also a secret of tenant 'acme'", error);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(601)]
    public void A_leeway_out_of_range_is_refused(int seconds)
    {
        var options = new TenancyOptions { TokenLeewaySeconds = seconds };
        Assert.Contains("TokenLeewaySeconds", Assert.Single(options.GetErrors()));
    }

    [Fact]
    public void Validate_throws_with_every_error()
    {
        var options = Options(Tenant("Bad", SecretA), Tenant("acme", "short"));
        options.TokenLeewaySeconds = -5;
        var ex = Assert.Throws<TenancyConfigurationException>(options.Validate);
        Assert.Equal(3, ex.Errors.Count);
        Assert.Contains("TokenLeewaySeconds", ex.Message);
        Assert.Contains("'Bad'", ex.Message);
        Assert.Contains("Secrets[0] is 5 bytes", ex.Message);
    }
}
