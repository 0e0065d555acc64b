using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

public sealed class HandshakeTests
{
    [Fact]
    public async Task Connect_sends_hello_and_surfaces_the_welcome_fields()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Tenant = "tenant-7";
        server.Node = "node-eu-1";

        await using var client = await FastRelayClient.ConnectAsync(server.Url,
            new FastRelayClientOptions { ClientId = "agent-1", Token = "secret" }).Within();

        var hello = await (await server.NextSessionAsync()).NextAsync(FrameType.Hello);
        Assert.Equal(1UL, hello.RequestId);
        Assert.Equal(ProtocolLimits.Version, hello.Envelope.Version);
        Assert.Equal("agent-1", hello.Envelope.ClientIdString);
        Assert.Equal("secret", System.Text.Encoding.UTF8.GetString(hello.Envelope.Token.Span));
        Assert.Equal("agent-1", client.ClientId);
        Assert.Equal("tenant-7", client.Tenant);
        Assert.Equal("node-eu-1", client.Node);
        Assert.Equal(ProtocolLimits.Version, client.ProtocolVersion);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task Connect_without_client_id_takes_the_id_the_server_generated()
    {
        await using var server = FakeRelayServer.StartTcp();

        await using var client = await FastRelayClient.ConnectAsync(server.Url.ToString()).Within();

        var hello = await (await server.NextSessionAsync()).NextAsync(FrameType.Hello);
        Assert.False(hello.Has(FieldMask.ClientId));
        Assert.False(hello.Has(FieldMask.Token));
        Assert.StartsWith("gen-", client.ClientId);
    }

    [Fact]
    public async Task Connect_with_a_rejected_token_fails_with_401_and_the_reason()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.RejectedToken = "expired";

        var error = await Assert.ThrowsAsync<FastRelayException>(() =>
            FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { Token = "expired" })).Within();

        Assert.Equal(ErrorCode.Unauthorized, error.ErrorCode);
        Assert.Equal("invalid token", error.Reason);
    }

    [Fact]
    public async Task Connect_times_out_when_the_server_never_welcomes()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = (_, frame) => Task.FromResult(frame.Type == FrameType.Hello);

        var error = await Assert.ThrowsAsync<TimeoutException>(() => FastRelayClient.ConnectAsync(server.Url,
            new FastRelayClientOptions { ConnectTimeout = TimeSpan.FromMilliseconds(300) })).Within();

        Assert.Contains("ConnectTimeout", error.Message);
        var session = await server.NextSessionAsync();
        await session.Ended.Within(); // the half-open connection was closed, not leaked
    }

    [Fact]
    public async Task Connect_to_a_closed_port_fails_with_a_connection_exception()
    {
        int port;
        await using (var server = FakeRelayServer.StartTcp())
        {
            port = server.Url.Port;
        }

        var error = await Assert.ThrowsAsync<FastRelayConnectionException>(() =>
            FastRelayClient.ConnectAsync($"tcp://127.0.0.1:{port}")).Within();

        Assert.Contains($"127.0.0.1:{port}", error.Message);
    }

    [Theory]
    [InlineData("http://localhost:80/")]
    [InlineData("tcp://localhost")]
    [InlineData("unix://relative/path.sock")]
    [InlineData("not a url")]
    public async Task Connect_rejects_an_unusable_url_before_opening_anything(string url)
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => FastRelayClient.ConnectAsync(url));
    }

    [Fact]
    public async Task Connect_over_a_unix_socket_handshakes_publishes_and_receives()
    {
        await using var server = FakeRelayServer.StartUnix();
        Assert.Equal("unix", server.Url.Scheme);

        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { ClientId = "sidecar" }).Within();
        await using var subscription = await client.SubscribeAsync("jobs").Within();
        var ack = await client.PublishAsync("jobs", "work"u8.ToArray()).Within();
        var received = await FirstAsync(subscription);

        Assert.Equal("sidecar", client.ClientId);
        Assert.Equal(1UL, ack.Seq);
        Assert.Equal("work"u8.ToArray(), received.Payload.ToArray());
        Assert.Equal("sidecar", received.ClientId);
    }

    private static async Task<RelayEvent> FirstAsync(Subscription subscription)
    {
        await foreach (var relayEvent in subscription.ReadAllAsync().WithCancellation(new CancellationTokenSource(Wait.Timeout).Token))
        {
            return relayEvent;
        }

        throw new InvalidOperationException("the subscription ended without an event");
    }
}
