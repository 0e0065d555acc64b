using System.Buffers.Binary;
using System.Text;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

/// <summary>Publish/subscribe through the real server over real sockets, with the .NET client.</summary>
public sealed class PubSubTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Events_published_over_one_transport_reach_a_subscriber_on_the_same_transport_in_order(string transport)
    {
        await using var relay = TestRelay.Start();
        var url = relay.UriFor(transport);
        await using var subscriber = await FastRelayClient.ConnectAsync(url, new FastRelayClientOptions { ClientId = "reader" });
        await using var publisher = await FastRelayClient.ConnectAsync(url, new FastRelayClientOptions { ClientId = "writer" });
        Assert.Equal("writer", publisher.ClientId);
        Assert.Equal("default", publisher.Tenant);

        await using var subscription = await subscriber.SubscribeAsync("chat.room1");
        Assert.Equal(0UL, subscription.StartSeq);

        var acks = new List<PublishAck>();
        for (int i = 1; i <= 5; i++)
        {
            acks.Add(await publisher.PublishAsync(
                "chat.room1",
                Encoding.UTF8.GetBytes($"message {i}"),
                new PublishOptions { MessageId = $"m{i}", PrevEventId = i > 1 ? $"m{i - 1}" : null, Flags = i == 5 ? EventFlags.Final : EventFlags.None }));
        }

        Assert.Equal([1UL, 2, 3, 4, 5], acks.Select(a => a.Seq));
        Assert.All(acks, a => Assert.Equal(subscription.Epoch, a.Epoch));

        int n = 0;
        using var cts = new CancellationTokenSource(Timeout);
        await foreach (var e in subscription.ReadAllAsync(cts.Token))
        {
            n++;
            Assert.Equal("chat.room1", e.Topic);
            Assert.Equal((ulong)n, e.Seq);
            Assert.Equal(subscription.Epoch, e.Epoch);
            Assert.Equal("writer", e.ClientId);
            Assert.Equal($"m{n}", e.MessageId);
            Assert.Equal(n > 1 ? $"m{n - 1}" : null, e.PrevEventId);
            Assert.Equal($"message {n}", Encoding.UTF8.GetString(e.Payload.Span));
            Assert.Equal(n == 5 ? EventFlags.Final : EventFlags.None, e.Flags);
            Assert.InRange(e.TimestampUtc, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
            if (n == 5)
            {
                break;
            }
        }

        Assert.Equal(5, n);
    }

    [Fact]
    public async Task Events_cross_transports_publisher_on_websocket_subscribers_on_tcp_and_unix()
    {
        await using var relay = TestRelay.Start();
        await using var tcp = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var unix = await FastRelayClient.ConnectAsync(relay.UnixUri);
        await using var ws = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        await using var s1 = await tcp.SubscribeAsync("mixed");
        await using var s2 = await unix.SubscribeAsync("mixed");
        var ack = await ws.PublishAsync("mixed", new byte[] { 42 });

        foreach (var sub in new[] { s1, s2 })
        {
            var e = await FirstAsync(sub);
            Assert.Equal(ack.Seq, e.Seq);
            Assert.Equal(new byte[] { 42 }, e.Payload.ToArray());
        }
    }

    [Fact]
    public async Task A_thousand_subscribers_on_one_topic_each_receive_every_event_exactly_once_in_seq_order()
    {
        const int subscribers = 1000;
        const int events = 50;
        await using var relay = TestRelay.Start();
        var transports = new[] { relay.TcpUri, relay.UnixUri, relay.WebSocketUri };
        var clients = new FastRelayClient[subscribers];
        var subs = new Subscription[subscribers];
        try
        {
            for (int batch = 0; batch < subscribers; batch += 100)
            {
                await Task.WhenAll(Enumerable.Range(batch, 100).Select(async i =>
                {
                    clients[i] = await FastRelayClient.ConnectAsync(transports[i % transports.Length]);
                    subs[i] = await clients[i].SubscribeAsync("broadcast");
                }));
            }

            var position = await relay.Engine.GetTopicPositionAsync(0, "broadcast");
            Assert.Equal(subscribers, position!.Value.Subscribers);

            await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
            var payload = new byte[64];
            for (int i = 1; i <= events; i++)
            {
                BinaryPrimitives.WriteInt32BigEndian(payload, i);
                await publisher.PublishAsync("broadcast", payload);
            }

            await Task.WhenAll(subs.Select(async sub =>
            {
                ulong expected = 1;
                using var cts = new CancellationTokenSource(Timeout);
                await foreach (var e in sub.ReadAllAsync(cts.Token))
                {
                    Assert.Equal(expected, e.Seq);
                    Assert.Equal((int)expected, BinaryPrimitives.ReadInt32BigEndian(e.Payload.Span));
                    if (expected++ == events)
                    {
                        break;
                    }
                }

                Assert.Equal((ulong)events + 1, expected);
            }));

            // Exactly once: after the last event, the next thing on each connection is the reply to a new request,
            // so no duplicate was queued behind it.
            var marker = await publisher.PublishAsync("broadcast", new byte[] { 0xFF });
            Assert.Equal((ulong)events + 1, marker.Seq);
            await Task.WhenAll(subs.Select(async sub => Assert.Equal(marker.Seq, (await FirstAsync(sub)).Seq)));
        }
        finally
        {
            await Task.WhenAll(clients.Where(c => c is not null).Select(c => c.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Many_publishers_on_many_topics_over_sockets_keep_per_topic_order_and_per_publisher_fifo()
    {
        const int topics = 12;
        const int publishers = 6;
        const int perTopic = 100;
        await using var relay = TestRelay.Start();
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var subs = new Subscription[topics];
        for (int t = 0; t < topics; t++)
        {
            subs[t] = await reader.SubscribeAsync($"jobs.{t}");
        }

        var shards = Enumerable.Range(0, topics).Select(t => relay.Engine.ShardIndexOf(0, Encoding.UTF8.GetBytes($"jobs.{t}"))).ToHashSet();
        Assert.Equal(relay.Engine.ShardCount, shards.Count);

        var writers = await Task.WhenAll(Enumerable.Range(0, publishers).Select(p =>
            FastRelayClient.ConnectAsync(p % 2 == 0 ? relay.TcpUri : relay.WebSocketUri, new FastRelayClientOptions { ClientId = $"p{p}" })));
        try
        {
            await Task.WhenAll(writers.Select((w, p) => Task.Run(async () =>
            {
                var payload = new byte[4];
                for (int i = 0; i < perTopic; i++)
                {
                    for (int t = 0; t < topics; t++)
                    {
                        BinaryPrimitives.WriteInt32BigEndian(payload, i);
                        await w.PublishNoAckAsync($"jobs.{t}", payload);
                    }
                }
            })));

            await Task.WhenAll(subs.Select(async sub =>
            {
                var next = new Dictionary<string, int>();
                ulong seq = 0;
                using var cts = new CancellationTokenSource(Timeout);
                await foreach (var e in sub.ReadAllAsync(cts.Token))
                {
                    Assert.Equal(++seq, e.Seq);
                    int i = BinaryPrimitives.ReadInt32BigEndian(e.Payload.Span);
                    Assert.Equal(next.GetValueOrDefault(e.ClientId!), i);
                    next[e.ClientId!] = i + 1;
                    if (seq == publishers * perTopic)
                    {
                        break;
                    }
                }

                Assert.Equal((ulong)(publishers * perTopic), seq);
                Assert.All(next.Values, v => Assert.Equal(perTopic, v));
            }));
        }
        finally
        {
            await Task.WhenAll(writers.Select(w => w.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Unsubscribe_stops_delivery_and_ping_measures_a_round_trip()
    {
        await using var relay = TestRelay.Start();
        await using var client = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var sub = await client.SubscribeAsync("u.t");
        await sub.UnsubscribeAsync();
        var position = await relay.Engine.GetTopicPositionAsync(0, "u.t");
        Assert.Equal(0, position!.Value.Subscribers);
        var rtt = await client.PingAsync();
        Assert.True(rtt > TimeSpan.Zero);
    }

    private static async Task<RelayEvent> FirstAsync(Subscription sub)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await foreach (var e in sub.ReadAllAsync(cts.Token))
        {
            return e;
        }

        throw new InvalidOperationException("subscription ended without an event");
    }
}
