using System.Text;
using FastRelay.Client;
using FastRelay.Core.Tenancy;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

public sealed class TenantIsolationTests
{
    private static string Token(string tenant, string secret, string client, string[]? publish = null, string[]? subscribe = null, TimeSpan? ttl = null, DateTimeOffset? now = null)
    {
        var issued = now ?? DateTimeOffset.UtcNow;
        return TokenIssuer.Mint(tenant, secret, new TenantTokenClaims
        {
            Tenant = tenant,
            ClientId = client,
            Publish = publish ?? [">"],
            Subscribe = subscribe ?? [">"],
            IssuedAt = issued,
            ExpiresAt = issued + (ttl ?? TimeSpan.FromHours(1)),
        });
    }

    private static Task<FastRelayClient> Connect(TestRelay relay, string token, string transport = "tcp") =>
        FastRelayClient.ConnectAsync(relay.UriFor(transport), new FastRelayClientOptions { Token = token });

    [Theory]
    [InlineData("tcp")]
    [InlineData("ws")]
    public async Task A_tenant_never_receives_another_tenants_events_on_the_same_topic_name(string transport)
    {
        await using var relay = TestRelay.Start(TestRelay.WithTenants);
        await using var acmeWriter = await Connect(relay, Token("acme", TestRelay.AcmeSecret, "acme-writer"), transport);
        await using var acmeReader = await Connect(relay, Token("acme", TestRelay.AcmeSecret, "acme-reader"), transport);
        await using var globexReader = await Connect(relay, Token("globex", TestRelay.GlobexSecret, "globex-reader"), transport);
        Assert.Equal("acme", acmeWriter.Tenant);
        Assert.Equal("acme-writer", acmeWriter.ClientId);
        Assert.Equal("globex", globexReader.Tenant);

        await using var acmeSub = await acmeReader.SubscribeAsync("chat.general");
        await using var globexSub = await globexReader.SubscribeAsync("chat.general");
        await acmeWriter.PublishAsync("chat.general", "acme secret"u8.ToArray());

        var acmeEvent = await First(acmeSub);
        Assert.Equal("acme secret", Encoding.UTF8.GetString(acmeEvent.Payload.Span));

        // Globex's topic of the same name is untouched: its first event is its own marker, at seq 1.
        var marker = await globexReader.PublishAsync("chat.general", "globex marker"u8.ToArray());
        Assert.Equal(1UL, marker.Seq);
        var globexEvent = await First(globexSub);
        Assert.Equal("globex marker", Encoding.UTF8.GetString(globexEvent.Payload.Span));
        Assert.Equal("globex-reader", globexEvent.ClientId);
    }

    [Fact]
    public async Task Token_patterns_limit_publish_and_subscribe_with_403_and_the_connection_stays_usable()
    {
        await using var relay = TestRelay.Start(TestRelay.WithTenants);
        await using var client = await Connect(relay, Token("acme", TestRelay.AcmeSecret, "agent", publish: ["jobs.>"], subscribe: ["results.agent.*"]));

        var pub = await Assert.ThrowsAsync<FastRelayException>(() => client.PublishAsync("results.agent.1", new byte[1]));
        Assert.Equal(ErrorCode.Forbidden, pub.ErrorCode);
        var sub = await Assert.ThrowsAsync<FastRelayException>(() => client.SubscribeAsync("jobs.new"));
        Assert.Equal(ErrorCode.Forbidden, sub.ErrorCode);

        await using var allowed = await client.SubscribeAsync("results.agent.1");
        var ack = await client.PublishAsync("jobs.new", new byte[1]);
        Assert.Equal(1UL, ack.Seq);
    }

    public static TheoryData<string, string> BadTokens()
    {
        var past = DateTimeOffset.UtcNow.AddHours(-3);
        return new TheoryData<string, string>
        {
            { "expired", Token("acme", TestRelay.AcmeSecret, "c", ttl: TimeSpan.FromHours(1), now: past) },
            { "wrong signature", Token("acme", "some-other-secret-0123456789abcdef0123456789", "c") },
            { "other tenant's secret", Token("acme", TestRelay.GlobexSecret, "c") },
            { "unknown tenant", Token("initech", TestRelay.AcmeSecret, "c") },
            { "garbage", "not-a-token" },
            { "alg none", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ0ZW5hbnQiOiJhY21lIiwic3ViIjoiYyJ9." },
        };
    }

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task Bad_expired_and_wrongly_signed_tokens_are_refused_with_401(string because, string token)
    {
        await using var relay = TestRelay.Start(TestRelay.WithTenants);
        var ex = await Assert.ThrowsAnyAsync<FastRelayException>(() => Connect(relay, token));
        Assert.True(ex.ErrorCode == ErrorCode.Unauthorized, $"{because}: got {ex.ErrorCode} {ex.Reason}");
        Assert.Contains("token", ex.Reason, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Missing_token_is_refused_when_tenants_are_configured()
    {
        await using var relay = TestRelay.Start(TestRelay.WithTenants);
        var ex = await Assert.ThrowsAnyAsync<FastRelayException>(() => FastRelayClient.ConnectAsync(relay.WebSocketUri));
        Assert.Equal(ErrorCode.Unauthorized, ex.ErrorCode);
        Assert.Contains("token is required", ex.Reason);
    }

    private static async Task<RelayEvent> First(Subscription sub)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await foreach (var e in sub.ReadAllAsync(cts.Token))
        {
            return e;
        }

        throw new InvalidOperationException("no event");
    }
}
