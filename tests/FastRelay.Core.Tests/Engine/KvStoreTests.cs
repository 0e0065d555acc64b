using System.Text;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class KvStoreTests : IDisposable
{
    private long _nowMs = 1_000_000;
    private readonly RelayEngine _engine = new(new RelayOptions { Shards = 2 });

    public KvStoreTests() => _engine.ClockMs = () => Interlocked.Read(ref _nowMs);

    public void Dispose() => _engine.Dispose();

    private async Task<InProcessClient> Connected(RelayEngine? engine = null, string? token = null)
    {
        var c = new InProcessClient(engine ?? _engine);
        await c.HelloAsync(token: token);
        return c;
    }

    private static async Task<Received> Set(InProcessClient c, string key, string value, uint ttlMs = 0, ulong? expected = null, bool ifAbsent = false)
    {
        var set = new Envelope(FrameType.KvSet).WithRequestId(c.NextRequestId()).WithTopic(key).WithPayload(Encoding.UTF8.GetBytes(value));
        if (ttlMs > 0) set = set.WithTtlMs(ttlMs);
        if (expected is { } v) set = set.WithSeq(v);
        if (ifAbsent) set = set.WithFlags(EventFlags.IfAbsent);
        c.Send(set);
        return await c.ReceiveAsync();
    }

    private static async Task<Received> Get(InProcessClient c, string key)
    {
        c.Send(new Envelope(FrameType.KvGet).WithRequestId(c.NextRequestId()).WithTopic(key));
        return await c.ReceiveAsync();
    }

    private static async Task<Received> Delete(InProcessClient c, string key, ulong? expected = null)
    {
        var del = new Envelope(FrameType.KvDelete).WithRequestId(c.NextRequestId()).WithTopic(key);
        if (expected is { } v) del = del.WithSeq(v);
        c.Send(del);
        return await c.ReceiveAsync();
    }

    [Fact]
    public async Task Set_get_and_delete_round_trip_with_increasing_versions()
    {
        var c = await Connected();
        var first = await Set(c, "jobs.42", "queued");
        Assert.Equal(FrameType.KvResult, first.Type);
        Assert.True(first.Seq > 0);
        var got = await Get(c, "jobs.42");
        Assert.Equal(("queued", first.Seq), (Encoding.UTF8.GetString(got.Payload), got.Seq));

        var second = await Set(c, "jobs.42", "running");
        Assert.True(second.Seq > first.Seq);
        Assert.Equal("running", Encoding.UTF8.GetString((await Get(c, "jobs.42")).Payload));

        Assert.Equal(0UL, (await Delete(c, "jobs.42")).Seq);
        var gone = await Get(c, "jobs.42");
        Assert.Equal(0UL, gone.Seq);
        Assert.Empty(gone.Payload);
    }

    [Fact]
    public async Task Ttl_expires_keys_lazily_on_read_and_actively_in_maintenance()
    {
        var c = await Connected();
        await Set(c, "lease.a", "owner-1", ttlMs: 10_000);
        await Set(c, "lease.b", "owner-2", ttlMs: 10_000);
        await Set(c, "forever", "x");
        var live = await Get(c, "lease.a");
        Assert.Equal("owner-1", Encoding.UTF8.GetString(live.Payload));

        Interlocked.Add(ref _nowMs, 10_001);
        Assert.Equal(0UL, (await Get(c, "lease.a")).Seq); // lazy
        await _engine.MaintainAsync(); // active: lease.b is removed without being read
        Assert.Equal(1, await _engine.CountKeysAsync()); // only "forever" is left
        Assert.Equal(0UL, (await Get(c, "lease.b")).Seq);
        Assert.Equal("x", Encoding.UTF8.GetString((await Get(c, "forever")).Payload));
    }

    [Fact]
    public async Task Compare_and_set_and_if_absent_refuse_with_409_and_the_current_version()
    {
        var c = await Connected();
        var created = await Set(c, "state", "v1", expected: 0); // 0 = must not exist
        Assert.Equal(FrameType.KvResult, created.Type);

        var stale = await Set(c, "state", "v2", expected: created.Seq + 100);
        Assert.Equal(FrameType.Error, stale.Type);
        Assert.Equal(ErrorCode.Conflict, stale.ErrorCode);
        Assert.Equal(created.Seq, stale.Seq);

        var ok = await Set(c, "state", "v2", expected: created.Seq);
        Assert.Equal(FrameType.KvResult, ok.Type);

        var again = await Set(c, "state", "v3", ifAbsent: true);
        Assert.Equal(ErrorCode.Conflict, again.ErrorCode);
        Assert.Equal(ok.Seq, again.Seq);

        var wrongDelete = await Delete(c, "state", expected: created.Seq);
        Assert.Equal(ErrorCode.Conflict, wrongDelete.ErrorCode);
        Assert.Equal("v2", Encoding.UTF8.GetString((await Get(c, "state")).Payload));
    }

    [Fact]
    public async Task Keys_live_in_tenant_namespaces_and_follow_token_permissions()
    {
        const string acme = "acme-secret-0123456789abcdef0123456789", globex = "globex-secret-0123456789abcdef012345678";
        using var engine = new RelayEngine(new RelayOptions
        {
            Shards = 1,
            Tenancy = new TenancyOptions { Tenants = [new TenantOptions { Name = "acme", Secrets = [acme] }, new TenantOptions { Name = "globex", Secrets = [globex] }] },
        });
        string Token(string tenant, string secret, string[] publish) => TokenIssuer.Mint(tenant, secret, new TenantTokenClaims
        {
            Tenant = tenant, ClientId = "c", Publish = publish, Subscribe = [">"], IssuedAt = DateTimeOffset.UtcNow, ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        });

        var a = await Connected(engine, Token("acme", acme, [">"]));
        var g = await Connected(engine, Token("globex", globex, ["jobs.>"]));
        await Set(a, "config.flag", "acme-value");
        Assert.Equal(0UL, (await Get(g, "config.flag")).Seq); // another tenant's key of the same name is not visible
        var forbidden = await Set(g, "config.flag", "x");
        Assert.Equal(ErrorCode.Forbidden, forbidden.ErrorCode); // writes need publish permission on the key
        Assert.Equal("acme-value", Encoding.UTF8.GetString((await Get(a, "config.flag")).Payload));
    }

    [Fact]
    public async Task Reads_and_overwrites_of_existing_keys_allocate_nothing_per_operation_on_the_shard()
    {
        var c = await Connected();
        await Set(c, "hot.key", "value-0");
        var set = new System.Buffers.ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(set, new Envelope(FrameType.KvSet).WithRequestId(1).WithTopic("hot.key").WithPayload("value-1"u8.ToArray()));
        var get = new System.Buffers.ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(get, new Envelope(FrameType.KvGet).WithRequestId(2).WithTopic("hot.key"));

        // The reply is taken by spinning on the outbox (the way a writer drains it), so the measurement sees the
        // shard's work only, not a test-side wake-up.
        void RoundTrips(int n)
        {
            for (int i = 0; i < n; i++)
            {
                foreach (var request in new[] { set.WrittenMemory, get.WrittenMemory })
                {
                    Assert.True(c.Session.OnEnvelope(request));
                    var spin = new SpinWait();
                    Protocol.Frame reply;
                    while (!c.Session.Outbox.TryDequeue(out reply))
                    {
                        spin.SpinOnce(sleep1Threshold: -1);
                    }

                    reply.Release();
                }
            }
        }

        RoundTrips(2000);
        long before = await _engine.GetShardAllocatedBytesAsync();
        RoundTrips(2000);
        long allocated = await _engine.GetShardAllocatedBytesAsync() - before;
        Assert.True(allocated < 2048, $"{allocated} bytes allocated on shard threads over 4,000 KV operations");
    }
}
