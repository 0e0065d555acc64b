using System.Collections.Concurrent;
using System.Text;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;

namespace FastRelay.Integration.Tests;

/// <summary>Per-key ordered delivery in consumer groups, through the real server and the .NET client.</summary>
public sealed class KeyedGroupTests
{
    private static void LongLease(Core.RelayOptions o) => o.Groups.Lease = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Records what a group's members process: per key the order, and any moment two events of one key were held at
    /// once. A member's handler calls <see cref="Begin"/>, does its work, calls <see cref="End"/> before acknowledging
    /// (the ACK lets the next event of the key go) and <see cref="Acknowledged"/> once the server confirmed the ACK.
    /// </summary>
    private sealed class KeyedLedger(int expected)
    {
        private readonly ConcurrentDictionary<string, int> _held = new();
        private readonly ConcurrentDictionary<string, List<string>> _order = new();
        private int _done;

        public ConcurrentBag<string> Violations { get; } = [];

        public TaskCompletionSource All { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IReadOnlyList<string> OrderOf(string key) => _order.TryGetValue(key, out var list) ? list : [];

        public void Begin(RelayEvent e)
        {
            if (e.Key is { } key && _held.AddOrUpdate(key, 1, (_, n) => n + 1) > 1)
            {
                Violations.Add($"two events of key {key} held at once (at {e.Topic}:{e.Seq})");
            }
        }

        public void End(RelayEvent e)
        {
            string key = e.Key ?? "";
            if (e.Key is not null)
            {
                _held.AddOrUpdate(key, 0, (_, n) => n - 1);
            }

            var list = _order.GetOrAdd(key, _ => []);
            lock (list)
            {
                list.Add(Encoding.UTF8.GetString(e.Payload.Span));
            }
        }

        public void Acknowledged()
        {
            if (Interlocked.Increment(ref _done) == expected)
            {
                All.TrySetResult();
            }
        }
    }

    private static async Task<List<FastRelayClient>> StartMembers(TestRelay relay, string topic, KeyedLedger ledger, int count, int credits)
    {
        var members = new List<FastRelayClient>();
        for (int m = 0; m < count; m++)
        {
            var client = await FastRelayClient.ConnectAsync(m % 2 == 0 ? relay.TcpUri : relay.WebSocketUri);
            members.Add(client);
            var random = new Random(100 + m);
            Subscription? self = null;
            self = await client.SubscribeAsync(topic, new SubscribeOptions { Group = "workers", Credits = credits }, async e =>
            {
                ledger.Begin(e);
                await Task.Delay(random.Next(0, 4)); // the work: 0..3 ms, different per member
                ledger.End(e);
                await self!.AckAsync(e);
                ledger.Acknowledged();
            });
        }

        return members;
    }

    [Fact]
    public async Task Per_key_processing_follows_publish_order_and_a_key_never_has_two_events_in_flight()
    {
        await using var relay = TestRelay.Start(LongLease);
        string[] keys = ["alice", "bob", "carol"];
        const int perKey = 20;
        const int keyless = 10;
        var ledger = new KeyedLedger(keys.Length * perKey + keyless);
        var members = await StartMembers(relay, "orders", ledger, count: 3, credits: 4);
        try
        {
            await using var watcher = await FastRelayClient.ConnectAsync(relay.UnixUri);
            var plain = await watcher.SubscribeAsync("orders"); // a plain subscriber just sees the key

            await using var publisher = await FastRelayClient.ConnectAsync(relay.UnixUri);
            for (int i = 0; i < perKey; i++)
            {
                foreach (string key in keys)
                {
                    await publisher.PublishAsync("orders", Encoding.UTF8.GetBytes($"{key}-{i}"), new PublishOptions { Key = key });
                }

                if (i < keyless)
                {
                    await publisher.PublishAsync("orders", Encoding.UTF8.GetBytes($"free-{i}"));
                }
            }

            await ledger.All.Task.Within();
            Assert.Empty(ledger.Violations);
            foreach (string key in keys)
            {
                Assert.Equal(Enumerable.Range(0, perKey).Select(i => $"{key}-{i}"), ledger.OrderOf(key));
            }

            Assert.Equal(keyless, ledger.OrderOf("").Count);
            var seen = await plain.TakeAsync(2);
            Assert.Equal(["alice", "bob"], seen.Select(e => e.Key));
            Assert.Equal((3, 0, 0), await relay.Engine.GetGroupStateAsync(0, "orders", "workers"));
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
    public async Task A_pattern_group_orders_each_key_across_topics_on_different_shards()
    {
        await using var relay = TestRelay.Start(LongLease);
        const string a = "orders.t0";
        int shardOfA = relay.Engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(a));
        string b = Enumerable.Range(1, 1000).Select(i => $"orders.t{i}")
            .First(t => relay.Engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(t)) != shardOfA);
        string[] keys = ["k1", "k2"];
        const int perKey = 16;
        var ledger = new KeyedLedger(keys.Length * perKey);
        var members = await StartMembers(relay, "orders.*", ledger, count: 3, credits: 4);
        try
        {
            await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
            for (int i = 0; i < perKey; i++)
            {
                foreach (string key in keys)
                {
                    // Each key alternates between the two topics: its order spans both.
                    string topic = (i % 2 == 0) ? a : b;
                    await publisher.PublishAsync(topic, Encoding.UTF8.GetBytes($"{key}-{i}"), new PublishOptions { Key = key });
                }
            }

            await ledger.All.Task.Within();
            Assert.Empty(ledger.Violations);
            foreach (string key in keys)
            {
                Assert.Equal(Enumerable.Range(0, perKey).Select(i => $"{key}-{i}"), ledger.OrderOf(key));
            }

            Assert.Equal((3, 0, 0), await relay.Engine.GetGroupStateAsync(0, "orders.*", "workers"));
        }
        finally
        {
            foreach (var client in members)
            {
                await client.DisposeAsync();
            }
        }
    }
}
