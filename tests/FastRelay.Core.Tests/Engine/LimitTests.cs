using FastRelay.Core.FlowControl;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class LimitTests
{
    private static async Task<InProcessClient> Connected(RelayEngine engine, string? token = null)
    {
        var c = new InProcessClient(engine);
        var welcome = await c.HelloAsync(token: token);
        Assert.Equal(FrameType.Welcome, welcome.Type);
        return c;
    }

    [Fact]
    public async Task Publisher_over_its_connection_rate_gets_backoff_with_a_retry_delay_and_nothing_is_sequenced()
    {
        using var engine = new RelayEngine(new RelayOptions { Shards = 1, Limits = new LimitOptions { PublishRatePerConnection = 0.01, PublishBurstPerConnection = 3 } });
        var c = await Connected(engine);
        for (int i = 1; i <= 3; i++)
        {
            var ack = await c.PublishAsync("r", [1]);
            Assert.Equal(FrameType.Ack, ack.Type);
            Assert.Equal((ulong)i, ack.Seq);
        }

        var backoff = await c.PublishAsync("r", [1]);
        Assert.Equal(FrameType.Backoff, backoff.Type);
        Assert.Contains("connection", backoff.Reason);
        Assert.InRange(engine.Backoffs, 1, 1);
        var position = await engine.GetTopicPositionAsync(0, "r");
        Assert.Equal(3UL, position!.Value.Seq); // the refused publish was not accepted

        // Another connection has its own budget.
        var other = await Connected(engine);
        Assert.Equal(FrameType.Ack, (await other.PublishAsync("r", [1])).Type);
    }

    [Fact]
    public async Task Backoff_carries_retry_after_ms_derived_from_the_rate()
    {
        using var engine = new RelayEngine(new RelayOptions { Shards = 1, Limits = new LimitOptions { PublishRatePerConnection = 0.1, PublishBurstPerConnection = 1 } });
        var c = await Connected(engine);
        await c.PublishAsync("r", [1]);
        c.Send(new Envelope(FrameType.Pub).WithRequestId(77).WithTopic("r").WithPayload(new byte[1]));
        var backoff = await c.ReceiveAsync();
        Assert.Equal(FrameType.Backoff, backoff.Type);
        Assert.Equal(77UL, backoff.RequestId);
        Assert.InRange(backoff.RetryAfterMs, 5_000U, 10_000U); // 0.1/s: the next token is up to 10 s away
    }

    [Fact]
    public async Task A_tenants_rate_is_shared_by_all_its_connections_and_does_not_touch_other_tenants()
    {
        var options = new RelayOptions
        {
            Shards = 1,
            Tenancy = new TenancyOptions
            {
                Tenants =
                [
                    new TenantOptions { Name = "noisy", Secrets = ["noisy-secret-0123456789abcdef0123456789"], PublishRate = 0.01, PublishBurst = 2 },
                    new TenantOptions { Name = "quiet", Secrets = ["quiet-secret-0123456789abcdef0123456789"] },
                ],
            },
        };
        using var engine = new RelayEngine(options);
        string Token(string tenant, string secret) => TokenIssuer.Mint(tenant, secret, new TenantTokenClaims
        {
            Tenant = tenant, ClientId = "c", Publish = [">"], Subscribe = [">"], IssuedAt = DateTimeOffset.UtcNow, ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        });

        var a = await Connected(engine, Token("noisy", "noisy-secret-0123456789abcdef0123456789"));
        var b = await Connected(engine, Token("noisy", "noisy-secret-0123456789abcdef0123456789"));
        var q = await Connected(engine, Token("quiet", "quiet-secret-0123456789abcdef0123456789"));
        Assert.Equal(FrameType.Ack, (await a.PublishAsync("t", [1])).Type);
        Assert.Equal(FrameType.Ack, (await b.PublishAsync("t", [1])).Type);
        var refused = await b.PublishAsync("t", [1]);
        Assert.Equal(FrameType.Backoff, refused.Type);
        Assert.Contains("tenant", refused.Reason);
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(FrameType.Ack, (await q.PublishAsync("t", [1])).Type);
        }
    }

    [Fact]
    public async Task Tenant_connection_limit_refuses_the_extra_hello_and_frees_slots_on_disconnect()
    {
        var options = new RelayOptions { Shards = 1, Limits = new LimitOptions { MaxConnectionsPerTenant = 2 } };
        using var engine = new RelayEngine(options);
        var first = await Connected(engine);
        await Connected(engine);
        var third = new InProcessClient(engine);
        var refused = await third.HelloAsync();
        Assert.Equal(FrameType.Error, refused.Type);
        Assert.Equal(ErrorCode.LimitExceeded, refused.ErrorCode);
        Assert.Contains("limit of 2 connections", refused.Reason);

        first.Session.OnTransportClosed();
        await Connected(engine); // the slot is free again
    }

    [Fact]
    public async Task Tenant_message_size_limit_refuses_larger_publishes_without_closing()
    {
        var options = new RelayOptions
        {
            Shards = 1,
            Tenancy = new TenancyOptions { Tenants = [new TenantOptions { Name = "small", Secrets = ["small-secret-0123456789abcdef0123456789"], MaxMessageBytes = 512 }] },
        };
        using var engine = new RelayEngine(options);
        var token = TokenIssuer.Mint("small", "small-secret-0123456789abcdef0123456789", new TenantTokenClaims
        {
            Tenant = "small", ClientId = "c", Publish = [">"], Subscribe = [">"], IssuedAt = DateTimeOffset.UtcNow, ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        });
        var c = await Connected(engine, token);
        var error = await c.PublishAsync("t", new byte[1024]);
        Assert.Equal(ErrorCode.TooLarge, error.ErrorCode);
        Assert.Contains("512", error.Reason);
        Assert.Equal(FrameType.Ack, (await c.PublishAsync("t", new byte[100])).Type);
    }

    [Fact]
    public async Task A_publish_nobody_receives_or_keeps_is_acknowledged_as_such()
    {
        using var engine = new RelayEngine(new RelayOptions
        {
            Shards = 1,
            Retention = new FastRelay.Core.Engine.RetentionOptions { Rules = [new FastRelay.Core.Engine.RetentionRule { Pattern = "ticks.>", MaxEvents = 0 }] },
        });
        var c = await Connected(engine);
        var unheard = await c.PublishAsync("ticks.eurusd", [1]);
        Assert.True(unheard.Flags.HasFlag(EventFlags.NoRecipients));
        var kept = await c.PublishAsync("orders.1", [1]); // retained for replay: not "no recipients"
        Assert.False(kept.Flags.HasFlag(EventFlags.NoRecipients));
        var listener = await Connected(engine);
        await listener.SubscribeAsync("ticks.eurusd");
        Assert.False((await c.PublishAsync("ticks.eurusd", [2])).Flags.HasFlag(EventFlags.NoRecipients));
    }
}
