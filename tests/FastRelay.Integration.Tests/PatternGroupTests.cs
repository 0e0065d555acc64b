using System.Collections.Concurrent;
using System.Text;
using FastRelay.Client;
using FastRelay.Core.Tenancy;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

/// <summary>Consumer groups on patterns: one group takes the events of every matching topic, whichever shard owns it.</summary>
public sealed class PatternGroupTests
{
    private static void LongLease(Core.RelayOptions o) => o.Groups.Lease = TimeSpan.FromMinutes(10);

    private static SubscribeOptions Member(int? credits = null, string group = "workers") => new() { Group = group, Credits = credits };

    private static readonly FastRelayClientOptions NoRetry = new() { PublishRetry = new PublishRetryOptions { MaxAttempts = 1 } };

    /// <summary>Two topics under <c>jobs.</c> owned by different shards (tenant 0).</summary>
    private static (string A, string B) TwoShardTopics(TestRelay relay)
    {
        const string a = "jobs.t0";
        int shardOfA = relay.Engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(a));
        for (int i = 1; ; i++)
        {
            string b = $"jobs.t{i}";
            if (relay.Engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(b)) != shardOfA)
            {
                return (a, b);
            }
        }
    }

    [Fact]
    public async Task Events_of_matching_topics_on_several_shards_are_spread_over_members_and_each_processed_once()
    {
        await using var relay = TestRelay.Start(LongLease);
        var (a, b) = TwoShardTopics(relay);
        const int perTopic = 20;
        var processed = new ConcurrentDictionary<(string Topic, ulong Seq), int>();
        var byMember = new ConcurrentDictionary<int, int>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int acked = 0;
        var members = new List<FastRelayClient>();
        try
        {
            for (int m = 0; m < 2; m++)
            {
                int id = m;
                var client = await FastRelayClient.ConnectAsync(m == 0 ? relay.TcpUri : relay.WebSocketUri);
                members.Add(client);
                Subscription? sub = null;
                sub = await client.SubscribeAsync("jobs.*", Member(credits: 4), async e =>
                {
                    processed.AddOrUpdate((e.Topic, e.Seq), 1, (_, n) => n + 1);
                    byMember.AddOrUpdate(id, 1, (_, n) => n + 1);
                    await sub!.AckAsync(e); // returns once the relay has applied it
                    if (Interlocked.Increment(ref acked) == 2 * perTopic)
                    {
                        all.TrySetResult(); // every ACK applied: the group's state below is final
                    }
                });
            }

            await using var publisher = await FastRelayClient.ConnectAsync(relay.UnixUri);
            await publisher.PublishAsync("other.topic", "not a job"u8.ToArray());
            for (int i = 0; i < perTopic; i++)
            {
                await publisher.PublishAsync(a, Encoding.UTF8.GetBytes($"a-{i}"));
                await publisher.PublishAsync(b, Encoding.UTF8.GetBytes($"b-{i}"));
            }

            await all.Task.Within();
            Assert.Equal(2 * perTopic, processed.Count);
            Assert.All(processed.Values, n => Assert.Equal(1, n)); // each once
            Assert.DoesNotContain(processed.Keys, k => k.Topic == "other.topic");
            Assert.Equal(2, byMember.Count); // in turn: both members worked
            Assert.Equal((2, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.*", "workers"));
        }
        finally
        {
            foreach (var client in members)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Credits_bound_what_a_member_holds_across_topics()
    {
        await using var relay = TestRelay.Start(LongLease);
        var (a, b) = TwoShardTopics(relay);
        await using var member = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var sub = await member.SubscribeAsync("jobs.*", Member(credits: 1));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await publisher.PublishAsync(a, "one"u8.ToArray());
        await publisher.PublishAsync(b, "two"u8.ToArray());

        await using var reader = sub.ReadAllAsync().GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync().AsTask().Within());
        var one = reader.Current;
        Assert.Equal(a, one.Topic);

        // One credit, held by the event of topic a: the event of topic b waits on the group's home shard.
        Assert.Equal((1, 1, 1), await relay.Engine.GetGroupStateAsync(0, "jobs.*", "workers"));
        var next = reader.MoveNextAsync().AsTask();
        Assert.False(next.IsCompleted);

        await sub.AckAsync(one).Within();
        Assert.True(await next.Within());
        Assert.Equal(b, reader.Current.Topic);
        Assert.Equal("two", Encoding.UTF8.GetString(reader.Current.Payload.Span));
        await sub.AckAsync(reader.Current).Within();
        var again = await Assert.ThrowsAsync<FastRelayException>(() => sub.AckAsync(one).Within());
        Assert.Equal(ErrorCode.NotFound, again.ErrorCode);
    }

    [Fact]
    public async Task An_event_not_acknowledged_within_the_lease_goes_to_another_member()
    {
        await using var relay = TestRelay.Start(o => o.Groups.Lease = TimeSpan.FromMilliseconds(300));
        var (_, b) = TwoShardTopics(relay);
        await using var first = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var firstSub = await first.SubscribeAsync("jobs.*", Member(credits: 1));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var ack = await publisher.PublishAsync(b, "slow job"u8.ToArray());
        var held = await firstSub.NextAsync(); // never acknowledged in time
        Assert.Equal((b, ack.Seq), (held.Topic, held.Seq));

        await using var second = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var secondSub = await second.SubscribeAsync("jobs.*", Member(credits: 1));
        var redelivered = await secondSub.NextAsync();
        Assert.Equal((b, ack.Seq), (redelivered.Topic, redelivered.Seq));
        await secondSub.AckAsync(redelivered).Within();
        var late = await Assert.ThrowsAsync<FastRelayException>(() => firstSub.AckAsync(held).Within());
        Assert.Equal(ErrorCode.NotFound, late.ErrorCode);
    }

    [Fact]
    public async Task Events_held_by_a_member_that_disconnects_go_to_another_member()
    {
        await using var relay = TestRelay.Start(LongLease);
        var (a, b) = TwoShardTopics(relay);
        var first = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var firstSub = await first.SubscribeAsync("jobs.*", Member(credits: 5));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await publisher.PublishAsync(a, "x"u8.ToArray());
        await publisher.PublishAsync(b, "y"u8.ToArray());
        Assert.Equal(2, (await firstSub.TakeAsync(2)).Count);

        await using var second = await FastRelayClient.ConnectAsync(relay.UnixUri);
        var secondSub = await second.SubscribeAsync("jobs.*", Member(credits: 5));
        first.AbortConnectionForTest(); // crashes mid-job: the leave hands both events back
        var redelivered = await secondSub.TakeAsync(2);
        Assert.Equal([a, b], redelivered.Select(e => e.Topic).Order());
        foreach (var e in redelivered)
        {
            await secondSub.AckAsync(e).Within();
        }

        await first.DisposeAsync();
    }

    [Fact]
    public async Task A_full_pattern_group_backs_off_publishes_to_matching_topics_while_other_topics_publish_fine()
    {
        await using var relay = TestRelay.Start(o =>
        {
            LongLease(o);
            o.Groups.PendingCapacity = 3;
        });
        var (a, b) = TwoShardTopics(relay);
        await using var member = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var sub = await member.SubscribeAsync("jobs.*", Member(credits: 1));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri, NoRetry);
        for (int i = 0; i < 4; i++)
        {
            await publisher.PublishAsync(i % 2 == 0 ? a : b, new byte[] { (byte)i }); // one held, three pending
        }

        var refused = await Assert.ThrowsAsync<FastRelayBackoffException>(() => publisher.PublishAsync(b, new byte[] { 9 }));
        Assert.Contains("consumer group", refused.Message);
        await Assert.ThrowsAsync<FastRelayBackoffException>(() => publisher.PublishAsync(a, new byte[] { 9 }));
        await publisher.PublishAsync("other.topic", new byte[] { 1 });

        var seen = new HashSet<(string, ulong)>();
        for (int i = 0; i < 4; i++)
        {
            var e = await sub.NextAsync();
            Assert.True(seen.Add((e.Topic, e.Seq)));
            await sub.AckAsync(e).Within();
        }

        Assert.Equal((1, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.*", "workers"));
        await publisher.PublishAsync(b, new byte[] { 10 }); // room again
    }

    [Fact]
    public async Task A_pattern_group_takes_nothing_from_non_matching_topics_or_another_tenant()
    {
        await using var relay = TestRelay.Start(o =>
        {
            LongLease(o);
            TestRelay.WithTenants(o);
        });
        await using var acme = await Connect(relay, "acme", TestRelay.AcmeSecret, "acme-worker");
        await using var globex = await Connect(relay, "globex", TestRelay.GlobexSecret, "globex-worker");
        var acmeSub = await acme.SubscribeAsync("jobs.*", Member(credits: 10));
        var globexSub = await globex.SubscribeAsync("jobs.*", Member(credits: 10));
        await using var acmePublisher = await Connect(relay, "acme", TestRelay.AcmeSecret, "acme-publisher");
        await using var globexPublisher = await Connect(relay, "globex", TestRelay.GlobexSecret, "globex-publisher");

        // Everything forwarded to one group goes through one FIFO, so these would arrive before the last event if at all.
        await globexPublisher.PublishAsync("jobs.a", "globex"u8.ToArray());
        await acmePublisher.PublishAsync("jobs.a.b", "too deep"u8.ToArray());
        await acmePublisher.PublishAsync("tasks.a", "other"u8.ToArray());
        await acmePublisher.PublishAsync("jobs.a", "acme"u8.ToArray());

        var first = await acmeSub.NextAsync();
        Assert.Equal(("jobs.a", "acme"), (first.Topic, Encoding.UTF8.GetString(first.Payload.Span)));
        var theirs = await globexSub.NextAsync();
        Assert.Equal("globex", Encoding.UTF8.GetString(theirs.Payload.Span));
        await acmeSub.AckAsync(first).Within();
        await globexSub.AckAsync(theirs).Within();

        // The marker proves nothing else was queued for the acme member before it.
        await acmePublisher.PublishAsync("jobs.b", "marker"u8.ToArray());
        var marker = await acmeSub.NextAsync();
        Assert.Equal("marker", Encoding.UTF8.GetString(marker.Payload.Span));
    }

    [Fact]
    public async Task A_topic_group_and_a_pattern_group_of_the_same_name_both_get_the_event()
    {
        await using var relay = TestRelay.Start(LongLease);
        await using var patternMember = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var topicMember = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var viaPattern = await patternMember.SubscribeAsync("jobs.*", Member());
        var viaTopic = await topicMember.SubscribeAsync("jobs.a", Member());
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var ack = await publisher.PublishAsync("jobs.a", "both"u8.ToArray());

        var p = await viaPattern.NextAsync();
        var t = await viaTopic.NextAsync();
        Assert.Equal(ack.Seq, p.Seq);
        Assert.Equal(ack.Seq, t.Seq);
        await viaPattern.AckAsync(p).Within();
        await viaTopic.AckAsync(t).Within();
    }

    [Fact]
    public async Task A_pattern_group_member_rejoins_after_a_reconnect()
    {
        await using var relay = TestRelay.Start(LongLease);
        await using var member = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { Reconnect = ClientSignals.FastReconnect });
        var sub = await member.SubscribeAsync("jobs.>", Member(credits: 2));
        var reconnected = member.NextReconnectAsync();
        member.AbortConnectionForTest();
        await reconnected;

        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var ack = await publisher.PublishAsync("jobs.x.y", "after"u8.ToArray());
        var e = await sub.NextAsync();
        Assert.Equal(("jobs.x.y", ack.Seq), (e.Topic, e.Seq));
        await sub.AckAsync(e).Within();
        Assert.Equal((1, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.>", "workers"));
    }

    [Fact]
    public async Task A_pattern_with_a_group_subscription_takes_no_other_subscription_in_one_client()
    {
        await using var relay = TestRelay.Start();
        await using var client = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await client.SubscribeAsync("jobs.*", Member());
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("jobs.*"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("jobs.*", Member(group: "others")));
        await client.SubscribeAsync("news.*");
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("news.*", Member()));

        // The server refuses a second group of the same name whose topics overlap: a GROUP_ACK could not tell them apart.
        var overlap = await Assert.ThrowsAsync<FastRelayException>(() => client.SubscribeAsync("jobs.>", Member()));
        Assert.Equal(ErrorCode.Conflict, overlap.ErrorCode);
    }

    private static Task<FastRelayClient> Connect(TestRelay relay, string tenant, string secret, string client)
    {
        var issued = DateTimeOffset.UtcNow;
        string token = TokenIssuer.Mint(tenant, secret, new TenantTokenClaims
        {
            Tenant = tenant,
            ClientId = client,
            Publish = [">"],
            Subscribe = [">"],
            IssuedAt = issued,
            ExpiresAt = issued + TimeSpan.FromHours(1),
        });
        return FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { Token = token });
    }
}
