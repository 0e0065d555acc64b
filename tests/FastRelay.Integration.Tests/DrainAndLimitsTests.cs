using System.Net.Sockets;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

/// <summary>Graceful drain, keepalive and idle timeout, accept-rate and per-IP limits, over real sockets.</summary>
public sealed class DrainAndLimitsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Drain_tells_every_client_to_reconnect_delivers_everything_accepted_and_then_closes()
    {
        await using var relay = TestRelay.Start(transport: t => t.DrainReconnectSpread = TimeSpan.FromSeconds(3));
        var subscribers = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => FastRelayClient.ConnectAsync(relay.UriFor(i % 2 == 0 ? "tcp" : "ws"))));
        var subs = await Task.WhenAll(subscribers.Select(c => c.SubscribeAsync("deploy.events")));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var drains = subscribers.Select(c =>
        {
            var tcs = new TaskCompletionSource<DrainNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
            c.Drained += (_, notice) => tcs.TrySetResult(notice);
            return tcs.Task;
        }).ToArray();

        // Fire-and-forget publishes are still being accepted when the drain starts.
        for (int i = 0; i < 2000; i++)
        {
            await publisher.PublishNoAckAsync("deploy.events", BitConverter.GetBytes(i));
        }

        var lastAck = await publisher.PublishAsync("deploy.events", new byte[] { 0xFF });
        await relay.Server.DrainAsync();

        foreach (var notice in await Task.WhenAll(drains).WaitAsync(Timeout))
        {
            Assert.InRange(notice.RetryAfter, TimeSpan.Zero, TimeSpan.FromSeconds(3));
        }

        // Every event accepted before the drain reached every subscriber, in order, before its connection closed.
        foreach (var sub in subs)
        {
            ulong expected = 1;
            using var cts = new CancellationTokenSource(Timeout);
            await foreach (var e in sub.ReadAllAsync(cts.Token).WithCancellation(cts.Token))
            {
                Assert.Equal(expected++, e.Seq);
                if (e.Seq == lastAck.Seq)
                {
                    break;
                }
            }

            Assert.Equal(lastAck.Seq + 1, expected);
        }

        foreach (var c in subscribers)
        {
            var closed = await c.Closed.WaitAsync(Timeout);
            Assert.False(closed.ByClient);
        }

        Assert.Equal(0, relay.Server.ConnectionCount);
    }

    [Fact]
    public async Task A_publish_after_the_drain_notice_is_refused_with_503_not_lost()
    {
        await using var relay = TestRelay.Start(transport: t => t.DrainWindow = TimeSpan.FromSeconds(5));
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        publisher.Drained += (_, _) => drained.TrySetResult();

        var session = relay.Engine; // the drain notice is sent to every session; emulate the window between notice and close
        foreach (var s in relay.Server.Sessions)
        {
            s.Drain(0, null);
        }

        await drained.Task.WaitAsync(Timeout);
        var ex = await Assert.ThrowsAnyAsync<FastRelayException>(() => publisher.PublishAsync("late", new byte[] { 1 }));
        Assert.Equal(ErrorCode.Unavailable, ex.ErrorCode);
        Assert.Null(await session.GetTopicPositionAsync(0, "late"));
    }

    [Fact]
    public async Task Quiet_clients_get_keepalive_pings_and_silent_ones_are_closed_after_the_idle_timeout()
    {
        await using var relay = TestRelay.Start(transport: t =>
        {
            t.KeepAliveInterval = TimeSpan.FromSeconds(1);
            t.IdleTimeout = TimeSpan.FromSeconds(3);
        });

        // The .NET client answers the server's PING: it stays connected through several idle timeouts' worth of quiet.
        await using var polite = await FastRelayClient.ConnectAsync(relay.TcpUri);

        // A raw client that completes HELLO and then never sends again is closed.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(relay.TcpEndPoint);
        await RawFrames.SendAsync(silent, new Envelope(FrameType.Hello).WithRequestId(1));
        Assert.Equal(FrameType.Welcome, (await RawFrames.ReceiveAsync(silent, Timeout)).Type);
        var ping = await RawFrames.ReceiveAsync(silent, Timeout);
        Assert.Equal(FrameType.Ping, ping.Type);
        Assert.True(await RawFrames.WaitForCloseAsync(silent, Timeout), "the silent connection should be closed");

        Assert.True(polite.IsConnected);
        Assert.True(await polite.PingAsync() > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_reconnection_storm_is_absorbed_at_the_accept_rate_and_everyone_gets_in()
    {
        const int clients = 600;
        await using var relay = TestRelay.Start(transport: t =>
        {
            t.AcceptRatePerSecond = 400;
            t.AcceptBurst = 50;
            t.Backlog = 4096;
        });

        var connected = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ =>
            FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ConnectTimeout = TimeSpan.FromSeconds(30) })));
        try
        {
            Assert.All(connected, c => Assert.True(c.IsConnected));
            Assert.Equal(clients, relay.Engine.SessionsOpen);
            Assert.True(relay.Server.AcceptsDelayed > 0, "the limiter should have made accepts wait");
        }
        finally
        {
            await Task.WhenAll(connected.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Connections_over_the_per_ip_limit_are_refused_with_a_clear_error()
    {
        await using var relay = TestRelay.Start(transport: t => t.MaxConnectionsPerIp = 2);
        await using var a = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var b = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var ex = await Assert.ThrowsAnyAsync<FastRelayException>(() => FastRelayClient.ConnectAsync(relay.TcpUri));
        Assert.Equal(ErrorCode.LimitExceeded, ex.ErrorCode);
        Assert.Contains("too many connections", ex.Reason);
        Assert.Equal(1, relay.Server.RefusedPerIp);

        await a.CloseAsync();
        await WaitUntil(() => relay.Server.ConnectionCount == 1);
        await using var c = await FastRelayClient.ConnectAsync(relay.TcpUri); // a slot is free again
        Assert.True(c.IsConnected);
    }

    [Fact]
    public async Task A_closed_connection_is_reported_disconnected_on_the_system_topic_and_no_longer_counted()
    {
        await using var relay = TestRelay.Start();
        await using var ops = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "ops" });
        await using var lifecycle = await ops.SubscribeAsync("$sys.connections");
        var worker = await FastRelayClient.ConnectAsync(relay.WebSocketUri, new FastRelayClientOptions { ClientId = "worker-7" });
        Assert.Equal(2, relay.Engine.SessionsOpen);
        await worker.CloseAsync();

        using var cts = new CancellationTokenSource(Timeout);
        await foreach (var e in lifecycle.ReadAllAsync(cts.Token))
        {
            var reader = new MessagePack.MessagePackReader(e.Payload);
            var fields = new Dictionary<string, string>();
            for (int n = reader.ReadMapHeader(); n > 0; n--)
            {
                string key = reader.ReadString()!;
                fields[key] = reader.NextMessagePackType == MessagePack.MessagePackType.Integer ? reader.ReadInt64().ToString() : reader.ReadString()!;
            }

            if (fields["client_id"] == "worker-7" && fields["event"] == "disconnected")
            {
                Assert.Equal("ws", fields["transport"]);
                break;
            }
        }

        await WaitUntil(() => relay.Engine.SessionsOpen == 1);
    }

    [Fact]
    public async Task A_subscriber_that_stops_reading_is_closed_and_its_socket_released_while_others_keep_receiving()
    {
        await using var relay = TestRelay.Start(
            o =>
            {
                o.MaxMessageBytes = 8192;
                o.OutboxMaxBytes = 64 * 1024;
                o.OutboxHardMaxBytes = 128 * 1024;
                o.SlowConsumerGrace = TimeSpan.FromMilliseconds(300);
            },
            t => t.CloseTimeout = TimeSpan.FromMilliseconds(500));

        // The stalled subscriber: subscribes, then never reads again (tiny receive buffer so the kernel fills fast).
        using var stalled = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await stalled.ConnectAsync(relay.TcpEndPoint);
        await RawFrames.SendAsync(stalled, new Envelope(FrameType.Hello).WithRequestId(1));
        Assert.Equal(FrameType.Welcome, (await RawFrames.ReceiveAsync(stalled, Timeout)).Type);
        await RawFrames.SendAsync(stalled, new Envelope(FrameType.Sub).WithRequestId(2).WithTopic("firehose"));
        Assert.Equal(FrameType.Ack, (await RawFrames.ReceiveAsync(stalled, Timeout)).Type);

        await using var healthy = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var sub = await healthy.SubscribeAsync("firehose");
        await using var publisher = await FastRelayClient.ConnectAsync(relay.TcpUri);
        // Enough bytes to get past what the kernel's socket buffers absorb (several MiB on loopback).
        const int events = 4000;
        var payload = new byte[4096];
        int published = 0;

        // The healthy subscriber must stay healthy however busy the machine is: the publisher never runs more than
        // a few events (well under the 64 KiB soft cap) ahead of what it has read.
        const int window = 8;
        using var credits = new SemaphoreSlim(window);
        var reader = Task.Run(async () =>
        {
            int n = 0;
            using var cts = new CancellationTokenSource(Timeout);
            await foreach (var e in sub.ReadAllAsync(cts.Token))
            {
                credits.Release();
                if (++n == events)
                {
                    return n;
                }
            }

            return n;
        });

        async Task PublishOne()
        {
            Assert.True(await credits.WaitAsync(Timeout), "the healthy subscriber stopped receiving");
            await publisher.PublishAsync("firehose", payload);
            published++;
        }

        while (published < events && relay.Engine.SlowConsumers == 0)
        {
            await PublishOne();
        }

        Assert.Equal(1, relay.Engine.SlowConsumers);
        while (published < events)
        {
            await PublishOne();
        }

        Assert.Equal(events, await reader.WaitAsync(Timeout)); // the healthy subscriber got every event
        await WaitUntil(() => relay.Server.ConnectionCount == 2); // the stalled socket is gone, not just flagged
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Timeout);
        while (!condition())
        {
            await Task.Yield();
            cts.Token.ThrowIfCancellationRequested();
        }
    }
}
