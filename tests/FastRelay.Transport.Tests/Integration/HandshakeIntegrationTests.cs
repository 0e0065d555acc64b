using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using FastRelay.Protocol;
using FastRelay.Transport.Tests.WebSockets;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>The HTTP/1.1 upgrade against a running relay: accept, every refusal, and the handshake deadline.</summary>
public sealed class HandshakeIntegrationTests : IAsyncLifetime
{
    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    private async Task<(HttpResponse Response, WsClient Client)> HandshakeAsync(string request)
    {
        var client = await WsClient.ConnectAsync(_relay.WebSocketEndPoint);
        return (await client.HandshakeAsync(request), client);
    }

    [Theory]
    [InlineData("GET /ws HTTP/1.1")]
    [InlineData("GET /ws?token=abc&x=1 HTTP/1.1")]
    public async Task Upgrade_is_answered_101_with_the_RFC_accept_value_and_the_connection_speaks_envelopes(string requestLine)
    {
        var (response, client) = await HandshakeAsync(WsClient.UpgradeRequest(requestLine));
        await using var _ = client;

        Assert.Equal("HTTP/1.1 101 Switching Protocols", response.StatusLine);
        Assert.Equal("websocket", response.Single("Upgrade"));
        Assert.Equal("Upgrade", response.Single("Connection"));
        Assert.Equal(WsClient.SampleAccept, response.Single("Sec-WebSocket-Accept"));
        Assert.Empty(response.Values("Sec-WebSocket-Extensions"));
        Assert.Empty(response.Values("Sec-WebSocket-Protocol"));

        await Exchange.HelloAsync(client, "upgraded");
    }

    [Fact]
    public async Task Accept_value_is_derived_from_each_key_and_offered_extensions_are_not_negotiated()
    {
        string key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        string expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));

        var (response, client) = await HandshakeAsync(WsClient.UpgradeRequest(
            key: key,
            connection: "keep-alive, Upgrade",
            extraHeaders: ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits", "Origin: https://app.example"]));
        await using var _ = client;

        Assert.Equal("HTTP/1.1 101 Switching Protocols", response.StatusLine);
        Assert.Equal(expected, response.Single("Sec-WebSocket-Accept"));
        Assert.Empty(response.Values("Sec-WebSocket-Extensions"));

        // Frames without RSV1 must still be read as plain (uncompressed) messages.
        await Exchange.HelloAsync(client, "no-deflate");
    }

    [Fact]
    public async Task Hello_pipelined_behind_the_upgrade_request_is_processed()
    {
        await using var client = await WsClient.ConnectAsync(_relay.WebSocketEndPoint);
        byte[] request = Encoding.ASCII.GetBytes(WsClient.UpgradeRequest());
        await client.SendRawAsync(ClientFrame.Concat(request, ClientFrame.Build(WebSocketOpcode.Binary, Envelopes.Hello(7, "pipelined"))));

        Assert.Equal("HTTP/1.1 101 Switching Protocols", (await client.ReadHttpResponseAsync()).StatusLine);
        Envelopes.AssertWelcome(await client.ReadEnvelopeAsync(), 7, "pipelined");
    }

    public static TheoryData<string, string, string> BadRequests => new()
    {
        { WsClient.UpgradeRequest(key: null), "HTTP/1.1 400 Bad Request", "Missing or invalid Sec-WebSocket-Key header" },
        { WsClient.UpgradeRequest(key: "not-a-base64-nonce"), "HTTP/1.1 400 Bad Request", "Missing or invalid Sec-WebSocket-Key header" },
        { WsClient.UpgradeRequest(key: Convert.ToBase64String(new byte[15]) + "AAAA"), "HTTP/1.1 400 Bad Request", "Missing or invalid Sec-WebSocket-Key header" },
        { WsClient.UpgradeRequest(upgrade: null), "HTTP/1.1 400 Bad Request", "Missing 'Upgrade: websocket' header" },
        { WsClient.UpgradeRequest(upgrade: "h2c"), "HTTP/1.1 400 Bad Request", "Missing 'Upgrade: websocket' header" },
        { WsClient.UpgradeRequest(connection: null), "HTTP/1.1 400 Bad Request", "Missing 'Connection: Upgrade' header" },
        { WsClient.UpgradeRequest(connection: "keep-alive"), "HTTP/1.1 400 Bad Request", "Missing 'Connection: Upgrade' header" },
        { WsClient.UpgradeRequest(host: null), "HTTP/1.1 400 Bad Request", "Missing Host header" },
        { WsClient.UpgradeRequest("GET /ws HTTP/1.0"), "HTTP/1.1 400 Bad Request", "Malformed request line" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Invalid_upgrade_is_refused_400_and_closed(string request, string statusLine, string body)
    {
        var (response, client) = await HandshakeAsync(request);
        await using var _ = client;

        AssertRefusal(response, statusLine, body);
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("8")]
    [InlineData("14")]
    public async Task Wrong_version_is_refused_426_naming_version_13(string version)
    {
        var (response, client) = await HandshakeAsync(WsClient.UpgradeRequest(version: version));
        await using var _ = client;

        AssertRefusal(response, "HTTP/1.1 426 Upgrade Required", "Unsupported Sec-WebSocket-Version; only 13 is supported");
        Assert.Equal("13", response.Single("Sec-WebSocket-Version"));
        Assert.Equal("websocket", response.Single("Upgrade"));
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("/chat")]
    [InlineData("/ws/")]
    [InlineData("/WS")]
    public async Task Other_path_is_refused_404(string path)
    {
        var (response, client) = await HandshakeAsync(WsClient.UpgradeRequest($"GET {path} HTTP/1.1"));
        await using var _ = client;

        AssertRefusal(response, "HTTP/1.1 404 Not Found", $"no WebSocket endpoint at '{path}' (use '/ws')");
        await client.ExpectEndOfStreamAsync();
    }

    [Fact]
    public async Task Post_is_refused_405_with_Allow_GET()
    {
        var (response, client) = await HandshakeAsync(WsClient.UpgradeRequest("POST /ws HTTP/1.1"));
        await using var _ = client;

        AssertRefusal(response, "HTTP/1.1 405 Method Not Allowed", "Only GET can be upgraded to a WebSocket");
        Assert.Equal("GET", response.Single("Allow"));
        await client.ExpectEndOfStreamAsync();
    }

    [Fact]
    public async Task Request_head_over_the_limit_is_refused_431()
    {
        string request = WsClient.UpgradeRequest(extraHeaders: [$"X-Padding: {new string('a', _relay.Server.Options.MaxHandshakeBytes)}"]);
        var (response, client) = await HandshakeAsync(request);
        await using var _ = client;

        AssertRefusal(response, "HTTP/1.1 431 Request Header Fields Too Large", "Request header fields too large");
        await client.ExpectEndOfStreamAsync();
    }

    private static void AssertRefusal(HttpResponse response, string statusLine, string body)
    {
        Assert.Equal(statusLine, response.StatusLine);
        Assert.Equal(body, response.Body);
        Assert.Equal("text/plain; charset=utf-8", response.Single("Content-Type"));
        Assert.Equal("close", response.Single("Connection"));
        Assert.Empty(response.Values("Sec-WebSocket-Accept"));
    }
}

/// <summary>The handshake deadline (upgrade + HELLO), on a relay configured with a short one.</summary>
public sealed class HandshakeTimeoutIntegrationTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(300);

    // System.Threading.Timer may fire a tick early on a coarse clock; the connection must not be cut much sooner.
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(30);

    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start(Timeout);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    [Fact]
    public async Task Silent_connection_is_closed_after_the_handshake_timeout()
    {
        var clock = Stopwatch.StartNew();
        await using var client = await WsClient.ConnectAsync(_relay.WebSocketEndPoint);

        await client.ExpectEndOfStreamAsync();

        Assert.InRange(clock.Elapsed, Timeout - Slack, Timeout + SocketClient.ReadTimeout);
    }

    [Fact]
    public async Task Half_a_request_is_closed_after_the_handshake_timeout_without_a_response()
    {
        var clock = Stopwatch.StartNew();
        await using var client = await WsClient.ConnectAsync(_relay.WebSocketEndPoint);
        string request = WsClient.UpgradeRequest();
        await client.SendRawAsync(request[..(request.Length / 2)]);

        await client.ExpectEndOfStreamAsync();

        Assert.InRange(clock.Elapsed, Timeout - Slack, Timeout + SocketClient.ReadTimeout);
    }

    [Fact]
    public async Task Raw_tcp_connection_without_hello_is_closed_after_the_handshake_timeout()
    {
        var clock = Stopwatch.StartNew();
        await using var client = await RawClient.ConnectTcpAsync(_relay.TcpEndPoint);

        await client.ExpectEndOfStreamAsync();

        Assert.InRange(clock.Elapsed, Timeout - Slack, Timeout + SocketClient.ReadTimeout);
    }

    [Fact]
    public async Task Upgraded_connection_without_hello_is_closed_1008_after_the_handshake_timeout()
    {
        var clock = Stopwatch.StartNew();
        await using var client = await WsClient.OpenAsync(_relay.WebSocketEndPoint);

        await client.ExpectCloseAsync(WebSocketCloseCode.PolicyViolation, "handshake timeout: no HELLO");

        Assert.InRange(clock.Elapsed, Timeout - Slack, Timeout + SocketClient.ReadTimeout);
    }

    [Fact]
    public async Task Connection_that_sent_hello_in_time_outlives_the_handshake_timeout()
    {
        await using var healthy = await WsClient.OpenAsync(_relay.WebSocketEndPoint);
        await Exchange.HelloAsync(healthy, "in-time");

        // A silent connection opened afterwards is cut at its own deadline, later than the healthy one's.
        await using var silent = await WsClient.ConnectAsync(_relay.WebSocketEndPoint);
        await silent.ExpectEndOfStreamAsync();

        byte[] payload = "still here"u8.ToArray();
        await healthy.SendEnvelopeAsync(Envelopes.Ping(9, payload));
        Envelopes.AssertPong(await healthy.ReadEnvelopeAsync(), 9, payload);
    }
}
