using System.Buffers.Binary;
using FastRelay.Protocol;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// The length-prefixed transports (raw TCP and the Unix socket) against a running relay, plus what concerns every
/// transport: delivery across transports, pipelined bursts, and a server stop.
/// </summary>
public sealed class RawSocketIntegrationTests : IAsyncLifetime
{
    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    private async Task<IEnvelopeClient> OpenAsync(string transport, string clientId)
    {
        var client = await _relay.ConnectAsync(transport);
        await Exchange.HelloAsync(client, clientId);
        return client;
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Hello_sub_pub_round_trip(string transport)
    {
        string topic = $"{transport}.topic";
        await using var subscriber = await OpenAsync(transport, $"{transport}-sub");
        ulong epoch = await Exchange.SubscribeAsync(subscriber, topic);
        await using var publisher = await OpenAsync(transport, $"{transport}-pub");

        await Exchange.PublishAndReceiveAsync(publisher, $"{transport}-pub", subscriber, topic, epoch, 1, requestId: 3);
        await Exchange.PublishAndReceiveAsync(publisher, $"{transport}-pub", subscriber, topic, epoch, 2, requestId: 4);

        byte[] payload = [0, 1, 2, 255];
        await publisher.SendEnvelopeAsync(Envelopes.Ping(5, payload));
        Envelopes.AssertPong(await publisher.ReadEnvelopeAsync(), 5, payload);
    }

    [Theory]
    [InlineData("tcp", "ws")]
    [InlineData("unix", "tcp")]
    [InlineData("ws", "unix")]
    public async Task Events_cross_transports(string publisherTransport, string subscriberTransport)
    {
        await using var subscriber = await OpenAsync(subscriberTransport, "cross-sub");
        ulong epoch = await Exchange.SubscribeAsync(subscriber, "cross.topic");
        await using var publisher = await OpenAsync(publisherTransport, "cross-pub");

        await Exchange.PublishAndReceiveAsync(publisher, "cross-pub", subscriber, "cross.topic", epoch, 1);
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Burst_of_pipelined_publishes_is_delivered_in_order(string transport)
    {
        // 300 PUBs in one write: envelopes straddle the 4 KiB pipe segments and replies are coalesced into few sends.
        const int count = 300;
        await using var subscriber = await OpenAsync(transport, "burst-sub");
        ulong epoch = await Exchange.SubscribeAsync(subscriber, "burst.topic");
        await using var publisher = await OpenAsync(transport, "burst-pub");

        var batch = new List<byte>();
        for (int i = 1; i <= count; i++)
        {
            byte[] pub = Envelopes.Pub((ulong)(100 + i), "burst.topic", Payload(i));
            batch.AddRange(transport == "ws" ? Tests.WebSockets.ClientFrame.Build(WebSocketOpcode.Binary, pub) : RawClient.Frame(pub));
        }

        await ((SocketClient)publisher).SendRawAsync(batch.ToArray());

        for (int i = 1; i <= count; i++)
        {
            Envelopes.AssertPublished(await publisher.ReadEnvelopeAsync(), (ulong)(100 + i), epoch, (ulong)i);
        }

        for (int i = 1; i <= count; i++)
        {
            Envelopes.AssertEvent(await subscriber.ReadEnvelopeAsync(), "burst.topic", epoch, (ulong)i, "burst-pub", Payload(i));
        }

        static byte[] Payload(int i) => [.. Enumerable.Range(0, 17 + (i * 13 % 200)).Select(b => (byte)(b + i))];
    }

    [Fact]
    public async Task Server_stop_closes_websockets_1001_and_raw_connections()
    {
        await using var ws = (WsClient)await OpenAsync("ws", "stop-ws");
        await using var tcp = (RawClient)await OpenAsync("tcp", "stop-tcp");
        await using var unix = (RawClient)await OpenAsync("unix", "stop-unix");

        var stop = _relay.Server.StopAsync();

        await ws.ExpectCloseAsync(WebSocketCloseCode.GoingAway, "server shutting down");
        await tcp.ExpectEndOfStreamAsync();
        await unix.ExpectEndOfStreamAsync();
        await ws.DisposeAsync();
        await tcp.DisposeAsync();
        await unix.DisposeAsync();
        await stop.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, _relay.Server.ConnectionCount);
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Frames_split_across_writes_and_batched_in_one_write_are_read(string transport)
    {
        await using var client = (RawClient)await _relay.ConnectAsync(transport);
        byte[] hello = RawClient.Frame(Envelopes.Hello(1, "batched"));
        await client.SendRawAsync(hello.AsMemory(0, 2));
        await client.SendRawAsync(hello.AsMemory(2, 5));
        await client.SendRawAsync(ClientFrameConcat(hello.AsSpan(7).ToArray(), RawClient.Frame(Envelopes.Ping(2, [2])), RawClient.Frame(Envelopes.Ping(3, [3]))));

        Envelopes.AssertWelcome(await client.ReadEnvelopeAsync(), 1, "batched");
        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 2, [2]);
        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 3, [3]);
    }

    [Theory]
    [InlineData("tcp", RelayFixture.MaxMessageBytes + 1)]
    [InlineData("unix", RelayFixture.MaxMessageBytes + 1)]
    [InlineData("tcp", 0x7FFF_FFFF)]
    [InlineData("unix", 0x7FFF_FFFF)]
    public async Task Oversized_length_prefix_gets_ERROR_413_then_close(string transport, int length)
    {
        await using var client = (RawClient)await OpenAsync(transport, "oversized");
        byte[] prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, (uint)length);

        await client.SendRawAsync(ClientFrameConcat(prefix, new byte[64]));

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.TooLarge, $"frame of {length} bytes exceeds the limit of {RelayFixture.MaxMessageBytes} bytes");
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Oversized_length_prefix_before_hello_gets_ERROR_413_then_close(string transport)
    {
        await using var client = (RawClient)await _relay.ConnectAsync(transport);

        await client.SendRawAsync(new byte[] { 0x00, 0x10, 0x00, 0x00 });

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.TooLarge, $"frame of 1048576 bytes exceeds the limit of {RelayFixture.MaxMessageBytes} bytes");
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Zero_length_frame_gets_ERROR_then_close(string transport)
    {
        await using var client = (RawClient)await OpenAsync(transport, "zero");

        await client.SendRawAsync(new byte[4]);

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.BadFrame, "zero-length frame");
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Garbage_envelope_gets_ERROR_then_close(string transport)
    {
        await using var client = (RawClient)await OpenAsync(transport, "garbage");

        await client.SendRawAsync(RawClient.Frame("GET / HTTP/1.1\r\n\r\n"u8.ToArray()));

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.BadFrame, "malformed envelope: expected a complete MessagePack map");
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Pub_before_hello_gets_ERROR_401_then_close(string transport)
    {
        await using var client = (RawClient)await _relay.ConnectAsync(transport);

        await client.SendEnvelopeAsync(Envelopes.Pub(8, "early", [1]));

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.Unauthorized, "HELLO must be the first frame", requestId: 8);
        await client.ExpectEndOfStreamAsync();
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Client_closing_its_side_ends_the_connection(string transport)
    {
        await using var client = (RawClient)await OpenAsync(transport, "leaver");

        client.ShutdownSend();

        await client.ExpectEndOfStreamAsync();
    }

    private static byte[] ClientFrameConcat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
