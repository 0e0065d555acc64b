using System.Buffers.Binary;
using System.Text;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;

namespace FastRelay.Integration.Tests;

/// <summary>Pattern subscriptions through the real server: routing by concrete topic, order per topic, reconnects.</summary>
public sealed class PatternSubscriptionTests
{
    [Fact]
    public async Task A_pattern_subscription_receives_matching_topics_on_every_shard_each_in_seq_order_and_nothing_else()
    {
        const int perTopic = 200;
        await using var relay = TestRelay.Start();
        var topics = Enumerable.Range(0, 16).Select(i => $"agents.a{i}.tasks").ToArray();
        var shards = topics.Select(t => relay.Engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(t))).ToHashSet();
        Assert.Equal(relay.Engine.ShardCount, shards.Count); // the pattern really spans every shard
        string[] others = ["agents.a0.logs", "agents.a0.tasks.extra", "people.a0.tasks", "agents.tasks"];

        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var pattern = await reader.SubscribeAsync("agents.*.tasks");
        Assert.True(pattern.IsPattern);
        var exact = await reader.SubscribeAsync("agents.a0.tasks"); // the same client, the topic itself as well
        var writers = await Task.WhenAll(Enumerable.Range(0, 2).Select(p =>
            FastRelayClient.ConnectAsync(p == 0 ? relay.TcpUri : relay.WebSocketUri, new FastRelayClientOptions { ClientId = $"w{p}" })));
        try
        {
            await Task.WhenAll(writers.Select((writer, p) => Task.Run(async () =>
            {
                var payload = new byte[4];
                for (int i = 0; i < perTopic / 2; i++)
                {
                    foreach (string topic in topics.Concat(others))
                    {
                        BinaryPrimitives.WriteInt32BigEndian(payload, i);
                        await writer.PublishNoAckAsync(topic, payload);
                    }
                }
            }))).Within();

            var lastSeq = new Dictionary<string, ulong>();
            var nextFromWriter = new Dictionary<(string Topic, string Writer), int>();
            foreach (var e in await pattern.TakeAsync(topics.Length * perTopic))
            {
                Assert.Contains(e.Topic, topics);
                Assert.Equal(lastSeq.GetValueOrDefault(e.Topic) + 1, e.Seq); // per-topic order, no gap, no duplicate
                lastSeq[e.Topic] = e.Seq;
                var key = (e.Topic, e.ClientId!);
                Assert.Equal(nextFromWriter.GetValueOrDefault(key), BinaryPrimitives.ReadInt32BigEndian(e.Payload.Span));
                nextFromWriter[key] = nextFromWriter.GetValueOrDefault(key) + 1;
            }

            Assert.All(topics, t => Assert.Equal((ulong)perTopic, lastSeq[t]));
            Assert.Equal(Enumerable.Range(1, perTopic).Select(i => (ulong)i), (await exact.TakeAsync(perTopic)).Select(e => e.Seq));

            // Nothing else is queued behind: the next event on either subscription is a fresh marker.
            var marker = await writers[0].PublishAsync("agents.a0.tasks", new byte[] { 0xFF });
            Assert.Equal(marker.Seq, (await pattern.NextAsync()).Seq);
            Assert.Equal(marker.Seq, (await exact.NextAsync()).Seq);
        }
        finally
        {
            await Task.WhenAll(writers.Select(w => w.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Tail_and_single_wildcards_match_like_the_server_and_two_subscriptions_to_one_pattern_share_its_sub()
    {
        await using var relay = TestRelay.Start();
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var everything = await reader.SubscribeAsync("doc.>");
        var twice = await Task.WhenAll(reader.SubscribeAsync("doc.*"), reader.SubscribeAsync("doc.*")); // one SUB on the wire

        foreach (string topic in new[] { "doc", "doc.a", "doc.a.b", "docs.a", "doc.b" })
        {
            await writer.PublishAsync(topic, Encoding.UTF8.GetBytes(topic));
        }

        Assert.Equal(["doc.a", "doc.a.b", "doc.b"], (await everything.TakeAsync(3)).Select(e => e.Topic));
        foreach (var subscription in twice)
        {
            Assert.Equal(["doc.a", "doc.b"], (await subscription.TakeAsync(2)).Select(e => e.Topic));
        }

        await twice[0].UnsubscribeAsync().Within(); // the other still receives: no UNSUB yet
        await writer.PublishAsync("doc.c", new byte[] { 1 });
        Assert.Equal("doc.c", (await twice[1].NextAsync()).Topic);
        Assert.Equal("doc.c", (await everything.NextAsync()).Topic);
    }

    [Fact]
    public async Task A_pattern_subscription_comes_back_after_a_reconnect_and_reports_the_events_it_missed_per_topic()
    {
        await using var relay = TestRelay.Start();
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { Reconnect = ClientSignals.FastReconnect });
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var gate = new ReconnectGate(reader);
        var pattern = await reader.SubscribeAsync("rooms.*");
        await writer.PublishAsync("rooms.red", new byte[] { 1 });
        await writer.PublishAsync("rooms.blue", new byte[] { 1 });
        Assert.Equal(2, (await pattern.TakeAsync(2)).Count);

        reader.AbortConnectionForTest();
        await gate.Reached;
        await writer.PublishAsync("rooms.red", new byte[] { 2 }); // seq 2 of red: missed, a pattern cannot resume
        var reconnected = reader.NextReconnectAsync();
        gate.Release();
        await reconnected;

        await writer.PublishAsync("rooms.red", new byte[] { 3 });
        await writer.PublishAsync("rooms.blue", new byte[] { 2 });
        var events = await pattern.TakeAsync(2);
        Assert.Equal([("rooms.red", 3UL), ("rooms.blue", 2UL)], events.Select(e => (e.Topic, e.Seq)));
        var notice = await pattern.NextNoticeAsync();
        Assert.Equal(SubscriptionNoticeKind.Gap, notice.Kind);
        Assert.Equal("rooms.red", notice.Topic);
        Assert.Equal(2UL, notice.Current.Seq);
        Assert.Equal(1UL, notice.Expected.Seq);
        Assert.Equal(1, pattern.NotRecoveredCount); // blue missed nothing
    }
}
