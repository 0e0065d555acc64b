using System.Buffers.Binary;
using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

public sealed class ConnectionTests
{
    [Fact]
    public async Task Ping_measures_a_round_trip_matched_by_request_id()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        var rtt = await client.PingAsync().Within();

        var ping = await session.NextAsync(FrameType.Ping);
        Assert.NotEqual(0UL, ping.RequestId);
        Assert.InRange(rtt, TimeSpan.Zero, Wait.Timeout);
    }

    [Fact]
    public async Task A_server_ping_is_answered_with_a_pong_echoing_request_id_and_payload()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        await session.SendAsync(new Envelope(FrameType.Ping).WithRequestId(77).WithPayload("probe"u8.ToArray()));

        var pong = await session.NextAsync(FrameType.Pong);
        Assert.Equal(77UL, pong.RequestId);
        Assert.Equal("probe"u8.ToArray(), pong.Envelope.Payload.ToArray());
    }

    [Fact]
    public async Task Connection_loss_fails_pending_requests_and_ends_subscriptions_with_the_exception()
    {
        await using var server = FakeRelayServer.StartTcp();
        var pubSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Intercept = (_, frame) =>
        {
            if (frame.Type != FrameType.Pub)
            {
                return Task.FromResult(false);
            }

            pubSeen.TrySetResult();
            return Task.FromResult(true); // never ACKed
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("feed").Within();
        var pending = client.PublishAsync("feed", new byte[] { 1 });
        await pubSeen.Task.Within();

        session.Drop();

        var publishError = await Assert.ThrowsAsync<FastRelayConnectionException>(() => pending).Within();
        Assert.Contains("connection", publishError.Message);
        var subscriptionError = await Assert.ThrowsAsync<FastRelayConnectionException>(async () =>
        {
            await foreach (var _ in subscription.ReadAllAsync())
            {
            }
        }).Within();
        Assert.Same(publishError, subscriptionError);
        var closed = await client.Closed.Within();
        Assert.False(closed.ByClient);
        Assert.Same(publishError, closed.Exception);
        Assert.False(client.IsConnected);
        Assert.False(subscription.IsActive);
        await Assert.ThrowsAsync<FastRelayConnectionException>(() => client.PublishAsync("feed", new byte[] { 2 })).Within();
        await Assert.ThrowsAsync<FastRelayConnectionException>(() => client.SubscribeAsync("other")).Within();
    }

    [Fact]
    public async Task A_connection_level_error_before_the_close_is_the_disconnect_reason()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var serverError = new TaskCompletionSource<FastRelayException>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ServerError += (_, e) => serverError.TrySetResult(e);

        await session.SendAsync(new Envelope(FrameType.Error).WithError(ErrorCode.Unavailable, "node shutting down"));
        Assert.Equal(ErrorCode.Unavailable, (await serverError.Task.Within()).ErrorCode);
        session.Drop();

        var closed = await client.Closed.Within();
        Assert.Equal(ErrorCode.Unavailable, closed.ErrorCode);
        Assert.Contains("node shutting down", closed.Reason);
        Assert.IsType<FastRelayConnectionException>(closed.Exception);
    }

    [Fact]
    public async Task Drain_raises_Drained_with_the_retry_delay_and_node_hint()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var drained = new TaskCompletionSource<DrainNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Drained += (_, notice) => drained.TrySetResult(notice);

        await session.SendAsync(new Envelope(FrameType.Drain).WithRetryAfterMs(2500).WithNode("node-b"));

        Assert.Equal(new DrainNotice(TimeSpan.FromMilliseconds(2500), "node-b"), await drained.Task.Within());
        Assert.True(client.IsConnected); // draining is a hint; the server closes when it is ready
    }

    [Fact]
    public async Task Close_ends_subscriptions_normally_and_refuses_new_requests()
    {
        await using var server = FakeRelayServer.StartTcp();
        var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("bye").Within();
        await client.PublishNoAckAsync("bye", new byte[] { 1 });

        await client.CloseAsync().Within();

        var left = new List<ulong>();
        await foreach (var e in subscription.ReadAllAsync(new CancellationTokenSource(Wait.Timeout).Token))
        {
            left.Add(e.Seq); // buffered events stay readable, then the stream ends without an exception
        }

        await subscription.Completion.Within();
        Assert.Equal([1UL], left); // the echo of the PUB arrived before the server closed its side
        var closed = await client.Closed.Within();
        Assert.True(closed.ByClient);
        Assert.Null(closed.Exception);
        Assert.False(client.IsConnected);
        await session.Ended.Within();
        Assert.Equal("bye", (await session.NextAsync(FrameType.Pub)).Topic); // queued before the close: sent, not lost
        var error = await Assert.ThrowsAsync<FastRelayConnectionException>(() => client.PublishAsync("bye", new byte[] { 2 })).Within();
        Assert.Contains("closed by the client", error.Message);
        await client.DisposeAsync(); // idempotent
    }

    [Fact]
    public async Task An_undecodable_envelope_from_the_server_ends_the_connection_with_a_clear_reason()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        await session.SendRawAsync([0, 0, 0, 2, 0x81, 0x00]); // a map whose only key has no value

        var closed = await client.Closed.Within();
        Assert.Equal(ErrorCode.BadFrame, closed.ErrorCode);
        Assert.Contains("cannot decode", closed.Reason);
    }

    [Fact]
    public async Task A_frame_over_MaxMessageBytes_ends_the_connection_with_TooLarge()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { MaxMessageBytes = 4096 }).Within();
        var session = await server.NextSessionAsync();
        var header = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(header, 4097);

        await session.SendRawAsync(header);

        var closed = await client.Closed.Within();
        Assert.Equal(ErrorCode.TooLarge, closed.ErrorCode);
        Assert.Contains("4097", closed.Reason);
    }

    [Fact]
    public async Task An_event_larger_than_a_pipe_segment_arrives_whole()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        await using var subscription = await client.SubscribeAsync("blobs").Within();
        var payload = new byte[300_000];
        new Random(1).NextBytes(payload);

        await session.SendEventAsync("blobs", 1, payload);
        await session.SendEventAsync("blobs", 2, [9]);

        var events = new List<RelayEvent>();
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        await foreach (var e in subscription.ReadAllAsync(timeout.Token))
        {
            events.Add(e);
            if (events.Count == 2)
            {
                break;
            }
        }

        Assert.Equal(payload, events[0].Payload.ToArray());
        Assert.Equal([9], events[1].Payload.ToArray());
    }
}
