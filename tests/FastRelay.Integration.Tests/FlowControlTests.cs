using System.Collections.Concurrent;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;

namespace FastRelay.Integration.Tests;

/// <summary>
/// Client-side flow control against a real relay: PublishAsync retrying BACKOFF, and a graceful drain followed by a
/// replacement node on the same ports (clients reconnect after the DRAIN delay, resume, retry what the old node refused).
/// </summary>
public sealed class FlowControlTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(25);

    private static readonly ReconnectOptions Reconnect = new()
    {
        Enabled = true,
        InitialDelay = TimeSpan.FromMilliseconds(20),
        MaxDelay = TimeSpan.FromMilliseconds(500),
        Jitter = 1,
    };

    [Fact]
    public async Task A_publisher_over_its_rate_is_backed_off_retries_and_every_event_arrives_once_in_order()
    {
        await using var relay = TestRelay.Start(o =>
        {
            o.Limits.PublishRatePerConnection = 20;
            o.Limits.PublishBurstPerConnection = 5;
        });
        await using var subscriber = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var sub = await subscriber.SubscribeAsync("rated");
        await using var publisher = await FastRelayClient.ConnectAsync(relay.WebSocketUri, new FastRelayClientOptions { ClientId = "rated-pub" });

        var acks = new List<PublishAck>();
        for (int i = 0; i < 60; i++)
        {
            acks.Add(await publisher.PublishAsync("rated", BitConverter.GetBytes(i)).WaitAsync(Timeout)); // no BACKOFF reaches the app
        }

        Assert.True(relay.Engine.Backoffs > 0, "the rate limit should have answered BACKOFF");
        Assert.Equal(Enumerable.Range(1, 60).Select(i => (ulong)i), acks.Select(a => a.Seq));
        Assert.All(acks, a => Assert.False(a.IsDuplicate));

        var events = await sub.TakeAsync(60);
        Assert.Equal(Enumerable.Range(0, 60), events.Select(e => BitConverter.ToInt32(e.Payload.Span)));
        Assert.Equal(Enumerable.Range(1, 60).Select(i => (ulong)i), events.Select(e => e.Seq));
        Assert.Equal(60, events.Select(e => e.MessageId).Distinct().Count()); // one generated id per publish, reused by its retries
        Assert.Equal(60UL, (await relay.Engine.GetTopicPositionAsync(0, "rated"))!.Value.Seq); // nothing sequenced twice
    }

    [Fact]
    public async Task Drain_and_restart_on_the_same_ports_every_accepted_event_arrives_before_the_close_and_later_ones_exactly_once_on_the_new_node()
    {
        const string Topic = "orders.critical";
        const int Total = 150;
        const int DrainAfter = 40;
        var spread = TimeSpan.FromMilliseconds(400);
        var old = TestRelay.Start(transport: t =>
        {
            t.DrainReconnectSpread = spread;
            t.DrainWindow = TimeSpan.FromSeconds(5);
        });
        TestRelay? replacement = null;
        var clients = new List<FastRelayClient>();
        try
        {
            int tcpPort = old.TcpEndPoint.Port, wsPort = old.WebSocketEndPoint.Port;
            var subscribers = new List<(FastRelayClient Client, Subscription Sub, Task<DrainNotice> Drained)>();
            for (int i = 0; i < 4; i++)
            {
                var c = await FastRelayClient.ConnectAsync(old.UriFor(i % 2 == 0 ? "tcp" : "ws"), new FastRelayClientOptions { ClientId = $"sub-{i}", Reconnect = Reconnect });
                clients.Add(c);
                subscribers.Add((c, await c.SubscribeAsync(Topic), DrainedAsync(c)));
            }

            var publisher = await FastRelayClient.ConnectAsync(old.TcpUri, new FastRelayClientOptions { ClientId = "pub", Reconnect = Reconnect });
            clients.Add(publisher);
            var publisherDrained = DrainedAsync(publisher);
            var drainNow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var acks = new PublishAck[Total];
            var publishing = Task.Run(async () =>
            {
                for (int i = 0; i < Total; i++)
                {
                    acks[i] = await publisher.PublishAsync(Topic, BitConverter.GetBytes(i)); // retried across the drain by the client
                    if (i == DrainAfter)
                    {
                        drainNow.TrySetResult();
                    }
                }
            });

            await drainNow.Task.WaitAsync(Timeout);
            var oldEpoch = (await old.Engine.GetTopicPositionAsync(0, Topic))!.Value.Epoch;
            await old.Server.DrainAsync().WaitAsync(Timeout);
            var oldLast = (await old.Engine.GetTopicPositionAsync(0, Topic))!.Value.Seq;

            // The replacement node: same TCP and WebSocket ports, empty memory (a new epoch).
            replacement = TestRelay.Start(transport: t =>
            {
                t.Tcp = $"127.0.0.1:{tcpPort}";
                t.WebSocket = $"127.0.0.1:{wsPort}";
            });

            await publishing.WaitAsync(Timeout);
            foreach (var notice in await Task.WhenAll(subscribers.Select(s => s.Drained).Append(publisherDrained)).WaitAsync(Timeout))
            {
                Assert.InRange(notice.RetryAfter, TimeSpan.Zero, spread); // each client its own reconnect delay
            }

            var position = (await replacement.Engine.GetTopicPositionAsync(0, Topic))!.Value;
            Assert.NotEqual(oldEpoch, position.Epoch);
            var oldAcks = acks.Where(a => a.Epoch == oldEpoch).ToArray();
            var newAcks = acks.Where(a => a.Epoch == position.Epoch).ToArray();
            Assert.Equal(Total, oldAcks.Length + newAcks.Length);
            Assert.True(oldAcks.Length > DrainAfter, $"{oldAcks.Length} ACKed by the old node");
            Assert.NotEmpty(newAcks);

            // Old node: everything it sequenced was ACKed (nothing accepted behind the app's back), 1..n.
            Assert.Equal((ulong)oldAcks.Length, oldLast);
            Assert.Equal(Enumerable.Range(1, oldAcks.Length).Select(i => (ulong)i), oldAcks.Select(a => a.Seq));

            // New node: each later publish exactly once (the retries carried one message id each).
            Assert.Equal((ulong)newAcks.Length, position.Seq);
            Assert.Equal(newAcks.Length, newAcks.Select(a => a.Seq).Distinct().Count());
            Assert.All(newAcks, a => Assert.False(a.IsDuplicate));

            // Subscribers reconnect after their own random DRAIN delay, possibly after the publisher finished: once
            // every subscriber is resubscribed on the new node, a marker event closes each one's stream.
            foreach (var (client, _, _) in subscribers)
            {
                await client.WaitUntilConnectedAsync().WaitAsync(Timeout);
            }

            await WaitForSubscribersAsync(replacement, Topic, subscribers.Count);
            var marker = await publisher.PublishAsync(Topic, BitConverter.GetBytes(-1));
            Assert.Equal(position.Epoch, marker.Epoch);
            position = (position.Epoch, marker.Seq, position.Subscribers);

            foreach (var (client, sub, _) in subscribers)
            {
                var received = new List<RelayEvent>();
                using var cts = new CancellationTokenSource(Timeout);
                await foreach (var e in sub.ReadAllAsync(cts.Token))
                {
                    received.Add(e);
                    if (e.Epoch == position.Epoch && e.Seq == position.Seq)
                    {
                        break;
                    }
                }

                // Everything the old node ACKed reached this subscriber, in order, before the old connection closed.
                var before = received.Where(e => e.Epoch == oldEpoch).ToList();
                Assert.Equal(Enumerable.Range(1, oldAcks.Length).Select(i => (ulong)i), before.Select(e => e.Seq));
                Assert.Equal(Enumerable.Range(0, oldAcks.Length), before.Select(e => BitConverter.ToInt32(e.Payload.Span)));

                // The resume against the new node is NOT_RECOVERED (new epoch); from its position on, every event once, in order.
                var notice = await sub.NextNoticeAsync();
                Assert.Equal(SubscriptionNoticeKind.NotRecovered, notice.Kind);
                Assert.Equal(position.Epoch, notice.Current.Epoch);
                var after = received.Where(e => e.Epoch == position.Epoch).ToList();
                Assert.Equal(Enumerable.Range((int)notice.Current.Seq + 1, (int)(position.Seq - notice.Current.Seq)).Select(i => (ulong)i), after.Select(e => e.Seq));
                Assert.Equal(before.Count + after.Count, received.Count);
            }

            // The new node's retention holds each post-drain publish exactly once, in publish order.
            await using var auditor = await FastRelayClient.ConnectAsync(replacement.TcpUri);
            await using var audit = await auditor.SubscribeAsync(Topic, new SubscribeOptions { ResumeFrom = new StreamPosition(position.Epoch, 0) });
            var replay = await audit.TakeAsync(newAcks.Length); // the marker follows them
            Assert.Equal(Enumerable.Range(oldAcks.Length, newAcks.Length), replay.Select(e => BitConverter.ToInt32(e.Payload.Span)));
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
            await old.DisposeAsync();
            if (replacement is not null)
            {
                await replacement.DisposeAsync();
            }
        }
    }

    private static async Task WaitForSubscribersAsync(TestRelay relay, string topic, int expected)
    {
        using var cts = new CancellationTokenSource(Timeout);
        while (((await relay.Engine.GetTopicPositionAsync(0, topic))?.Subscribers ?? 0) < expected)
        {
            cts.Token.ThrowIfCancellationRequested();
            await Task.Yield();
        }
    }

    [Fact]
    public async Task A_reconnect_storm_after_a_drain_is_absorbed_by_the_replacements_accept_rate_and_everyone_resubscribes()
    {
        const int Clients = 800;
        const int Topics = 10;
        var old = TestRelay.Start(transport: t =>
        {
            t.DrainReconnectSpread = TimeSpan.FromMilliseconds(300);
            t.DrainWindow = TimeSpan.FromSeconds(5);
            t.Backlog = 4096;
        });
        TestRelay? replacement = null;
        FastRelayClient[] clients = [];
        try
        {
            int tcpPort = old.TcpEndPoint.Port, wsPort = old.WebSocketEndPoint.Port;
            var options = new FastRelayClientOptions
            {
                Reconnect = new ReconnectOptions { Enabled = true, InitialDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromSeconds(1), Jitter = 1 },
                ConnectTimeout = TimeSpan.FromSeconds(20),
            };
            clients = await Task.WhenAll(Enumerable.Range(0, Clients).Select(i =>
                FastRelayClient.ConnectAsync(old.TcpUri, options))).WaitAsync(Timeout); // one listener: its rate is the limit
            await Task.WhenAll(clients.Select((c, i) => c.SubscribeAsync($"storm.{i % Topics}"))).WaitAsync(Timeout);
            var reconnected = clients.Select(c => c.NextReconnectAsync()).ToArray();

            await old.Server.DrainAsync().WaitAsync(Timeout);
            replacement = TestRelay.Start(transport: t =>
            {
                t.Tcp = $"127.0.0.1:{tcpPort}";
                t.WebSocket = $"127.0.0.1:{wsPort}";
                t.AcceptRatePerSecond = 300;
                t.AcceptBurst = 50;
                t.Backlog = 4096;
            });

            await Task.WhenAll(reconnected).WaitAsync(Timeout);
            Assert.All(clients, c => Assert.True(c.IsConnected));
            Assert.Equal(Clients, replacement.Engine.SessionsOpen);
            int subscribed = 0;
            for (int t = 0; t < Topics; t++)
            {
                subscribed += (await replacement.Engine.GetTopicPositionAsync(0, $"storm.{t}"))!.Value.Subscribers;
            }

            Assert.Equal(Clients, subscribed);
            Assert.True(replacement.Server.AcceptsDelayed > 0, "the accept limiter should have made the storm wait");
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
            await old.DisposeAsync();
            if (replacement is not null)
            {
                await replacement.DisposeAsync();
            }
        }
    }

    private static Task<DrainNotice> DrainedAsync(FastRelayClient client)
    {
        var drained = new TaskCompletionSource<DrainNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Drained += (_, notice) => drained.TrySetResult(notice);
        return drained.Task;
    }
}
