using System.Buffers.Binary;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class FairnessTests
{
    private const string NoisySecret = "noisy-secret-0123456789abcdef0123456789";
    private const string QuietSecret = "quiet-secret-0123456789abcdef0123456789";

    private static string Token(string tenant, string secret, string client) => TokenIssuer.Mint(tenant, secret, new TenantTokenClaims
    {
        Tenant = tenant, ClientId = client, Publish = [">"], Subscribe = [">"], IssuedAt = DateTimeOffset.UtcNow, ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
    });

    [Fact]
    public async Task A_flooding_tenant_does_not_stop_another_tenants_events_on_the_same_shard()
    {
        using var engine = new RelayEngine(new RelayOptions
        {
            Shards = 1, // both tenants share the one shard
            TenantLaneCapacity = 256,
            OutboxCapacity = 1 << 20,
            OutboxMaxBytes = 512L << 20,
            Tenancy = new TenancyOptions
            {
                Tenants =
                [
                    new TenantOptions { Name = "noisy", Secrets = [NoisySecret] },
                    new TenantOptions { Name = "quiet", Secrets = [QuietSecret] },
                ],
            },
        });

        var quietReader = new InProcessClient(engine, "quiet-reader");
        await quietReader.HelloAsync(Token("quiet", QuietSecret, "reader"));
        await quietReader.SubscribeAsync("orders");
        var quietWriter = new InProcessClient(engine, "quiet-writer");
        await quietWriter.HelloAsync(Token("quiet", QuietSecret, "writer"));

        using var stop = new CancellationTokenSource();
        var flooders = Enumerable.Range(0, 3).Select(i => Task.Run(async () =>
        {
            var noisy = new InProcessClient(engine, $"noisy-{i}");
            await noisy.HelloAsync(Token("noisy", NoisySecret, $"noisy-{i}"));
            var payload = new byte[512];
            for (int n = 0; n < 300_000 && !stop.IsCancellationRequested; n++)
            {
                noisy.Send(new Envelope(FrameType.Pub).WithTopic($"flood.{n % 64}").WithPayload(payload));
                while (noisy.Session.Outbox.TryDequeue(out var reply))
                {
                    reply.Release(); // BACKOFFs; the flooder ignores them and keeps going
                }
            }
        })).ToArray();

        // While the flood runs, the quiet tenant's events all arrive, in order.
        var payloadQ = new byte[8];
        for (int i = 1; i <= 500; i++)
        {
            BinaryPrimitives.WriteInt64BigEndian(payloadQ, i);
            var ack = await quietWriter.PublishAsync("orders", payloadQ);
            Assert.True(ack.Type == FrameType.Ack, $"quiet publish {i} got {ack.Type}: {ack.Reason}");
            var e = await quietReader.ReceiveAsync();
            Assert.Equal((ulong)i, e.Seq);
            Assert.Equal(i, BinaryPrimitives.ReadInt64BigEndian(e.Payload));
        }

        stop.Cancel();
        await Task.WhenAll(flooders);
        Assert.True(engine.Published > 500, "the flood should have been running");
    }

    [Fact]
    public async Task Queries_and_quiesce_see_every_publish_that_arrived_before_them_even_when_lanes_are_backed_up()
    {
        using var engine = new RelayEngine(new RelayOptions
        {
            Shards = 1,
            Tenancy = new TenancyOptions
            {
                Tenants =
                [
                    new TenantOptions { Name = "noisy", Secrets = [NoisySecret] },
                    new TenantOptions { Name = "quiet", Secrets = [QuietSecret] },
                ],
            },
        });
        var a = new InProcessClient(engine, "a");
        await a.HelloAsync(Token("noisy", NoisySecret, "a"));
        var b = new InProcessClient(engine, "b");
        await b.HelloAsync(Token("quiet", QuietSecret, "b"));

        const int each = 3000; // enough to back up lanes, within each tenant's inbox share
        for (int i = 0; i < each; i++)
        {
            a.Send(new Envelope(FrameType.Pub).WithTopic("t").WithPayload(new byte[16]));
            b.Send(new Envelope(FrameType.Pub).WithTopic("t").WithPayload(new byte[16]));
        }

        // Both tenants' topics "t" are distinct (namespaces); a query posted now must see all of them sequenced.
        var noisyTopic = await engine.GetTopicPositionAsync(1, "t");
        var quietTopic = await engine.GetTopicPositionAsync(2, "t");
        Assert.Equal((ulong)each, noisyTopic!.Value.Seq);
        Assert.Equal((ulong)each, quietTopic!.Value.Seq);
    }
}
