using FastRelay.Core.Sessions;
using FastRelay.Protocol;
using FastRelay.Transport.Connections;
using FastRelay.Transport.Tests.WebSockets;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// The read path straight on the socket: a zero-byte wait, then non-blocking receives into a pooled buffer that is
/// held only while a frame is incomplete. Frames split across many reads, frames larger than the first buffer, a
/// peer that leaves mid-frame, and a close while the read loop waits.
/// </summary>
public sealed class ReceivePathIntegrationTests : IAsyncLifetime
{
    // Larger than the first receive buffer, so a whole raw frame of this size needs the buffer to grow.
    private const int LargeMessageBytes = 64 * 1024;
    private const int LargePayloadBytes = 3 * Connection.InitialReceiveBytes;
    private static readonly TimeSpan ConditionTimeout = TimeSpan.FromSeconds(10);

    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start(relay: o =>
        {
            o.MaxMessageBytes = LargeMessageBytes;
            o.OutboxMaxBytes = Math.Max(o.OutboxMaxBytes, LargeMessageBytes);
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    private async Task<(IEnvelopeClient Client, Connection Connection)> OpenAsync(string transport, string clientId)
    {
        var client = await _relay.ConnectAsync(transport);
        await Exchange.HelloAsync(client, clientId);
        var connection = _relay.Server.Connections.Single(c => c.Session.ClientId == clientId);
        return (client, connection);
    }

    /// <summary>One envelope in the transport's framing, as the bytes a client puts on the wire.</summary>
    private static byte[] Framed(string transport, byte[] envelope) =>
        transport == "ws" ? ClientFrame.Build(WebSocketOpcode.Binary, envelope) : RawClient.Frame(envelope);

    private static async Task SendRawAsync(IEnvelopeClient client, ReadOnlyMemory<byte> bytes) =>
        await ((SocketClient)client).SendRawAsync(bytes);

    /// <summary>Waits (bounded) for a condition the read loop reaches on its own thread right after the client's last step.</summary>
    private static void AssertEventually(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, ConditionTimeout), $"Not reached within {ConditionTimeout.TotalSeconds:0} s: {what}");

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Envelope_sent_one_byte_per_write_arrives_whole(string transport)
    {
        var (client, _) = await OpenAsync(transport, $"{transport}-bytes");
        await using var _ = client;
        byte[] payload = [.. Enumerable.Range(0, 40).Select(i => (byte)i)];
        byte[] frame = Framed(transport, Envelopes.Ping(7, payload));

        for (int i = 0; i < frame.Length; i++)
        {
            await SendRawAsync(client, frame.AsMemory(i, 1));
        }

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 7, payload);
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Idle_connection_holds_no_receive_buffer(string transport)
    {
        var (client, connection) = await OpenAsync(transport, $"{transport}-idle");
        await using var _ = client;
        byte[] payload = "ping"u8.ToArray();
        await client.SendEnvelopeAsync(Envelopes.Ping(3, payload));
        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 3, payload);

        AssertEventually(() => connection.ReceiveBufferBytes == 0, "the receive buffer returned once the input was handled");
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Incomplete_frame_keeps_its_bytes_until_the_rest_arrives(string transport)
    {
        var (client, connection) = await OpenAsync(transport, $"{transport}-partial");
        await using var _ = client;
        byte[] payload = "split"u8.ToArray();
        byte[] frame = Framed(transport, Envelopes.Ping(4, payload));

        await SendRawAsync(client, frame.AsMemory(0, 3));
        AssertEventually(() => connection.ReceiveBufferBytes > 0, "a buffer held for the first 3 bytes of a frame");
        await SendRawAsync(client, frame.AsMemory(3));

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 4, payload);
        AssertEventually(() => connection.ReceiveBufferBytes == 0, "the buffer returned after the whole frame was handled");
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Raw_frame_larger_than_the_first_receive_buffer_grows_it_then_gives_it_back(string transport)
    {
        var (client, connection) = await OpenAsync(transport, $"{transport}-large");
        await using var _ = client;
        byte[] payload = [.. Enumerable.Range(0, LargePayloadBytes).Select(i => (byte)(i * 7))];
        byte[] frame = Framed(transport, Envelopes.Ping(5, payload));
        int half = frame.Length / 2;

        await SendRawAsync(client, frame.AsMemory(0, half));
        AssertEventually(() => connection.ReceiveBufferBytes >= half, $"a buffer grown past {Connection.InitialReceiveBytes} bytes for half a {frame.Length}-byte frame");
        await SendRawAsync(client, frame.AsMemory(half));

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 5, payload);
        AssertEventually(() => connection.ReceiveBufferBytes == 0, "the grown buffer returned after the frame was handled");
    }

    [Fact]
    public async Task WebSocket_message_larger_than_the_first_receive_buffer_is_consumed_without_growing_it()
    {
        var (client, connection) = await OpenAsync("ws", "ws-large");
        await using var _ = client;
        byte[] payload = [.. Enumerable.Range(0, LargePayloadBytes).Select(i => (byte)(i * 7))];
        byte[] frame = Framed("ws", Envelopes.Ping(6, payload));

        // The message reader unmasks payload bytes into its own buffer as they arrive: the receive buffer keeps at
        // most a partial header, whatever the message size.
        for (int offset = 0; offset < frame.Length; offset += 1000)
        {
            await SendRawAsync(client, frame.AsMemory(offset, Math.Min(1000, frame.Length - offset)));
            Assert.True(connection.ReceiveBufferBytes <= Connection.InitialReceiveBytes, $"receive buffer of {connection.ReceiveBufferBytes} bytes");
        }

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 6, payload);
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    public async Task Peer_closing_mid_frame_ends_the_connection_gracefully(string transport)
    {
        var (client, connection) = await OpenAsync(transport, $"{transport}-midframe");
        await using var _ = client;
        byte[] frame = Framed(transport, Envelopes.Ping(8, new byte[200]));

        await SendRawAsync(client, frame.AsMemory(0, frame.Length - 50));
        ((SocketClient)client).ShutdownSend();

        if (transport == "ws")
        {
            await ((WsClient)client).ExpectCloseAsync(WebSocketCloseCode.NormalClosure, "connection closed by peer", reply: false);
        }
        else
        {
            await ((SocketClient)client).ExpectEndOfStreamAsync();
        }

        await connection.Completion.WaitAsync(ConditionTimeout);
        Assert.Equal(0, connection.ReceiveBufferBytes);
        Assert.Equal(SessionState.Closed, connection.Session.State);
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    public async Task Close_while_the_read_loop_waits_sends_the_reason_and_ends_at_the_close_deadline(string transport)
    {
        var (client, connection) = await OpenAsync(transport, $"{transport}-parked");
        await using var _ = client;
        AssertEventually(() => connection.ReceiveBufferBytes == 0, "the read loop parked with no buffer");

        // Closed from outside while the read loop waits on a receive only the peer could end; the client then
        // stays silent and open, so only the close deadline (CloseTimeout, 1 s here) can end the connection.
        connection.Session.Close(SessionCloseKind.GoingAway, "server going away");

        if (transport == "ws")
        {
            await ((WsClient)client).ExpectCloseAsync(WebSocketCloseCode.GoingAway, "server going away", reply: false);
        }
        else
        {
            await ((SocketClient)client).ExpectEndOfStreamAsync();
        }

        await connection.Completion.WaitAsync(ConditionTimeout);
        Assert.DoesNotContain(connection, _relay.Server.Connections);
    }

    [Fact]
    public async Task Upgrade_request_and_hello_in_one_write_get_the_101_first_then_welcome()
    {
        await using var client = await WsClient.ConnectAsync(_relay.WebSocketEndPoint);
        byte[] request = System.Text.Encoding.Latin1.GetBytes(WsClient.UpgradeRequest());
        byte[] hello = ClientFrame.Build(WebSocketOpcode.Binary, Envelopes.Hello(1, "pipelined"));

        await client.SendRawAsync(ClientFrame.Concat(request, hello));

        var response = await client.ReadHttpResponseAsync();
        Assert.StartsWith("HTTP/1.1 101 ", response.StatusLine);
        Envelopes.AssertWelcome(await client.ReadEnvelopeAsync(), 1, "pipelined");
    }
}
