using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

public sealed class WebSocketTransportTests
{
    [Fact]
    public async Task WebSocket_client_handshakes_publishes_and_receives_events_split_across_frames()
    {
        await using var server = FakeRelayServer.StartWebSocket();
        Assert.Equal("ws", server.Url.Scheme);
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { ClientId = "browser" }).Within();
        var session = await server.NextSessionAsync();
        var wire = Assert.IsType<WebSocketWire>(session.Wire);
        Assert.Equal("GET /ws HTTP/1.1", wire.RequestLine);
        Assert.Equal("node-a", client.Node);

        await using var subscription = await client.SubscribeAsync("ui").Within();
        await using var events = subscription.ReadAllAsync(new CancellationTokenSource(Wait.Timeout).Token).GetAsyncEnumerator();
        var ack = await client.PublishAsync("ui", "small"u8.ToArray()).Within();
        Assert.True(await events.MoveNextAsync());
        var echoed = events.Current;

        wire.FragmentBytes = 1000; // from here on every server message arrives in 1000-byte parts
        var large = new byte[50_000];
        new Random(2).NextBytes(large);
        await session.SendEventAsync("ui", 2, large);
        Assert.True(await events.MoveNextAsync());
        var reassembled = events.Current;
        var rtt = await client.PingAsync().Within();

        Assert.Equal(1UL, ack.Seq);
        Assert.Equal("small"u8.ToArray(), echoed.Payload.ToArray());
        Assert.Equal("browser", echoed.ClientId);
        Assert.Equal(large, reassembled.Payload.ToArray());
        Assert.True(rtt >= TimeSpan.Zero);
        Assert.Equal("small"u8.ToArray(), (await session.NextAsync(FrameType.Pub)).Envelope.Payload.ToArray());
    }

    [Fact]
    public async Task WebSocket_close_from_the_server_surfaces_its_reason()
    {
        await using var server = FakeRelayServer.StartWebSocket();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("t").Within();

        await ((WebSocketWire)session.Wire).CloseAsync("slow consumer", CancellationToken.None);

        var closed = await client.Closed.Within();
        Assert.False(closed.ByClient);
        Assert.Contains("slow consumer", closed.Reason);
        await Assert.ThrowsAsync<FastRelayConnectionException>(() => subscription.Completion).Within();
    }
}
