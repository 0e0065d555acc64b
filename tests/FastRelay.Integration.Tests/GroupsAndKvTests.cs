using System.Collections.Concurrent;
using System.Text;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

/// <summary>Consumer groups and the key-value store through the real server and the .NET client.</summary>
public sealed class GroupsAndKvTests
{
    private static void LongLease(Core.RelayOptions o) => o.Groups.Lease = TimeSpan.FromMinutes(10);

    private static SubscribeOptions Member(int? credits = null) => new() { Group = "workers", Credits = credits };

    [Fact]
    public async Task A_group_spreads_events_over_its_members_and_each_is_processed_once()
    {
        await using var relay = TestRelay.Start(LongLease);
        var members = new List<FastRelayClient>();
        var processed = new ConcurrentDictionary<ulong, int>();
        var byMember = new int[3];
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        const int Jobs = 30;
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var client = await FastRelayClient.ConnectAsync(relay.TcpUri);
                members.Add(client);
                int index = i;
                Subscription? self = null;
                self = await client.SubscribeAsync("jobs", Member(), async e =>
                {
                    await self!.AckAsync(e);
                    Interlocked.Increment(ref byMember[index]);
                    processed.AddOrUpdate(e.Seq, 1, (_, n) => n + 1);
                    if (processed.Count == Jobs)
                    {
                        all.TrySetResult();
                    }
                });
            }

            await using var publisher = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
            for (int i = 0; i < Jobs; i++)
            {
                await publisher.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job {i}"));
            }

            await all.Task.Within();
            Assert.All(processed.Values, n => Assert.Equal(1, n));
            Assert.All(byMember, n => Assert.True(n > 0, "every member gets a share"));
            Assert.Equal(Jobs, byMember.Sum());
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
    public async Task An_event_held_by_a_member_that_disconnects_is_redelivered_to_another_member()
    {
        await using var relay = TestRelay.Start(LongLease);
        var first = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var firstSub = await first.SubscribeAsync("jobs", Member());
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var ack = await publisher.PublishAsync("jobs", "only job"u8.ToArray());

        var held = await firstSub.NextAsync(); // the only member gets it, and never acknowledges
        Assert.Equal(ack.Seq, held.Seq);

        await using var second = await FastRelayClient.ConnectAsync(relay.UnixUri);
        var secondSub = await second.SubscribeAsync("jobs", Member());
        first.AbortConnectionForTest(); // crashes mid-job: the lease is long, the leave hands the event back
        var redelivered = await secondSub.NextAsync();
        Assert.Equal(ack.Seq, redelivered.Seq);
        Assert.Equal("only job", Encoding.UTF8.GetString(redelivered.Payload.Span));
        await secondSub.AckAsync(redelivered).Within();
        await first.DisposeAsync();
    }

    [Fact]
    public async Task Credits_stop_delivery_until_an_ack_and_a_second_ack_is_refused_with_404()
    {
        await using var relay = TestRelay.Start(LongLease);
        await using var member = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var sub = await member.SubscribeAsync("jobs", Member(credits: 1));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await publisher.PublishAsync("jobs", "one"u8.ToArray());
        await publisher.PublishAsync("jobs", "two"u8.ToArray());

        await using var reader = sub.ReadAllAsync().GetAsyncEnumerator();
        Assert.True(await reader.MoveNextAsync().AsTask().Within());
        var one = reader.Current;
        Assert.Equal("one", Encoding.UTF8.GetString(one.Payload.Span));

        // No credit left: the server holds the second event back (one in flight, one waiting), so nothing arrives.
        var state = await relay.Engine.GetGroupStateAsync(0, "jobs", "workers");
        Assert.Equal((1, 1, 1), state);
        var next = reader.MoveNextAsync().AsTask();
        Assert.False(next.IsCompleted);

        await sub.AckAsync(one).Within();
        Assert.True(await next.Within());
        Assert.Equal("two", Encoding.UTF8.GetString(reader.Current.Payload.Span));

        var again = await Assert.ThrowsAsync<FastRelayException>(() => sub.AckAsync(one).Within());
        Assert.Equal(ErrorCode.NotFound, again.ErrorCode);
        await sub.AckAsync(reader.Current).Within();
    }

    [Fact]
    public async Task A_group_member_rejoins_after_a_reconnect()
    {
        await using var relay = TestRelay.Start(LongLease);
        await using var member = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { Reconnect = ClientSignals.FastReconnect });
        var sub = await member.SubscribeAsync("jobs", Member());
        var reconnected = member.NextReconnectAsync();
        member.AbortConnectionForTest();
        await reconnected;

        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var ack = await publisher.PublishAsync("jobs", "after"u8.ToArray());
        var e = await sub.NextAsync();
        Assert.Equal(ack.Seq, e.Seq);
        await sub.AckAsync(e).Within();
    }

    [Fact]
    public async Task A_topic_cannot_have_a_group_and_a_plain_subscription_in_one_client()
    {
        await using var relay = TestRelay.Start();
        await using var client = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await client.SubscribeAsync("jobs", Member());
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("jobs"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("jobs", Member()));

        await client.SubscribeAsync("news");
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("news", Member()));
        var plain = await client.SubscribeAsync("news");
        await client.PublishAsync("news", "x"u8.ToArray());
        var e = await plain.NextAsync();
        Assert.Throws<InvalidOperationException>(() => { _ = plain.AckAsync(e); });
    }

    [Fact]
    public async Task Kv_set_get_compare_and_set_if_absent_delete_and_ttl()
    {
        await using var relay = TestRelay.Start();
        await using var client = await FastRelayClient.ConnectAsync(relay.TcpUri);
        Assert.Null(await client.KvGetAsync("jobs.lease.1"));

        ulong v1 = await client.KvSetAsync("jobs.lease.1", "alice"u8.ToArray(), new KvSetOptions { ExpectedVersion = 0 });
        Assert.True(v1 > 0);
        var entry = await client.KvGetAsync("jobs.lease.1");
        Assert.NotNull(entry);
        Assert.Equal("jobs.lease.1", entry.Key);
        Assert.Equal("alice", Encoding.UTF8.GetString(entry.Value.Span));
        Assert.Equal(v1, entry.Version);
        Assert.Null(entry.Ttl);

        var conflict = await Assert.ThrowsAsync<FastRelayKvConflictException>(() =>
            client.KvSetAsync("jobs.lease.1", "bob"u8.ToArray(), new KvSetOptions { ExpectedVersion = v1 + 100 }));
        Assert.Equal(v1, conflict.CurrentVersion);
        Assert.Equal(ErrorCode.Conflict, conflict.ErrorCode);
        var absent = await Assert.ThrowsAsync<FastRelayKvConflictException>(() =>
            client.KvSetAsync("jobs.lease.1", "bob"u8.ToArray(), new KvSetOptions { IfAbsent = true }));
        Assert.Equal(v1, absent.CurrentVersion);

        ulong v2 = await client.KvSetAsync("jobs.lease.1", "bob"u8.ToArray(), new KvSetOptions { ExpectedVersion = v1, Ttl = TimeSpan.FromHours(1) });
        Assert.True(v2 > v1);
        entry = await client.KvGetAsync("jobs.lease.1");
        Assert.Equal("bob", Encoding.UTF8.GetString(entry!.Value.Span));
        Assert.NotNull(entry.Ttl);
        Assert.InRange(entry.Ttl.Value, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1));

        var deleteConflict = await Assert.ThrowsAsync<FastRelayKvConflictException>(() => client.KvDeleteAsync("jobs.lease.1", v1));
        Assert.Equal(v2, deleteConflict.CurrentVersion);
        await client.KvDeleteAsync("jobs.lease.1", v2);
        Assert.Null(await client.KvGetAsync("jobs.lease.1"));
        await client.KvDeleteAsync("jobs.lease.1"); // deleting an absent key succeeds

        ulong v3 = await client.KvSetAsync("jobs.lease.1", ReadOnlyMemory<byte>.Empty, new KvSetOptions { IfAbsent = true });
        Assert.True(v3 > 0);
        Assert.Equal(0, (await client.KvGetAsync("jobs.lease.1"))!.Value.Length);
    }
}
