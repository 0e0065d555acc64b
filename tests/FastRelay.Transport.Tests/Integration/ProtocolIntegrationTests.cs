using System.Buffers.Binary;
using FastRelay.Protocol;
using FastRelay.Transport.Tests.WebSockets;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>Envelope-level errors over WebSocket, and one bad connection not disturbing the others.</summary>
public sealed class ProtocolIntegrationTests : IAsyncLifetime
{
    private const string Malformed = "malformed envelope: expected a complete MessagePack map";

    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    private async Task<WsClient> OpenAsync(string clientId)
    {
        var client = await WsClient.OpenAsync(_relay.WebSocketEndPoint);
        await Exchange.HelloAsync(client, clientId);
        return client;
    }

    [Fact]
    public async Task Garbage_binary_message_gets_ERROR_then_close_1002()
    {
        await using var client = await OpenAsync("garbage");

        await client.SendFrameAsync(WebSocketOpcode.Binary, "this is not MessagePack"u8);

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.BadFrame, Malformed);
        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, Malformed);
    }

    [Fact]
    public async Task Garbage_before_hello_gets_ERROR_then_close_1002()
    {
        await using var client = await WsClient.OpenAsync(_relay.WebSocketEndPoint);

        await client.SendFrameAsync(WebSocketOpcode.Binary, [0xC1, 0x00, 0xFF]);

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.BadFrame, Malformed);
        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, Malformed);
    }

    [Fact]
    public async Task Empty_binary_message_gets_ERROR_then_close_1002()
    {
        await using var client = await OpenAsync("empty");

        await client.SendFrameAsync(WebSocketOpcode.Binary, []);

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.BadFrame, Malformed);
        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, Malformed);
    }

    [Fact]
    public async Task Pub_before_hello_gets_ERROR_401_then_close_1008()
    {
        await using var client = await WsClient.OpenAsync(_relay.WebSocketEndPoint);

        await client.SendEnvelopeAsync(Envelopes.Pub(11, "early.topic", [1, 2, 3]));

        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.Unauthorized, "HELLO must be the first frame", requestId: 11);
        await client.ExpectCloseAsync(WebSocketCloseCode.PolicyViolation, "HELLO must be the first frame");
    }

    [Fact]
    public async Task Second_hello_gets_ERROR_405_and_the_connection_stays_open()
    {
        await using var client = await OpenAsync("twice");

        await client.SendEnvelopeAsync(Envelopes.Hello(4, "twice"));
        Envelopes.AssertError(await client.ReadEnvelopeAsync(), ErrorCode.UnsupportedType, "HELLO was already received on this connection", requestId: 4);

        await client.SendEnvelopeAsync(Envelopes.Ping(5, [5]));
        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 5, [5]);
    }

    [Fact]
    public async Task Hello_sub_pub_round_trip_over_websocket()
    {
        await using var subscriber = await OpenAsync("ws-sub");
        ulong epoch = await Exchange.SubscribeAsync(subscriber, "ws.topic");
        await using var publisher = await OpenAsync("ws-pub");

        await Exchange.PublishAndReceiveAsync(publisher, "ws-pub", subscriber, "ws.topic", epoch, 1, requestId: 3);
        await Exchange.PublishAndReceiveAsync(publisher, "ws-pub", subscriber, "ws.topic", epoch, 2, requestId: 4);
    }

    /// <summary>The misbehaviours of the isolation test: each closes only its own connection.</summary>
    public static TheoryData<string> Misbehaviours => new() { "garbage-envelope", "garbage-bytes", "oversized-frame", "oversized-raw-prefix" };

    [Theory]
    [MemberData(nameof(Misbehaviours))]
    public async Task Misbehaving_connection_is_closed_while_others_keep_publishing_and_receiving(string misbehaviour)
    {
        await using var subscriber = await OpenAsync("healthy-sub");
        ulong epoch = await Exchange.SubscribeAsync(subscriber, "isolation.topic");
        await using var publisher = await OpenAsync("healthy-pub");
        await Exchange.PublishAndReceiveAsync(publisher, "healthy-pub", subscriber, "isolation.topic", epoch, 1, requestId: 10);

        switch (misbehaviour)
        {
            case "garbage-envelope":
                {
                    await using var bad = await OpenAsync("bad");
                    Assert.Equal(epoch, await Exchange.SubscribeAsync(bad, "isolation.topic", requestId: 20, lastSeq: 1));
                    await bad.SendFrameAsync(WebSocketOpcode.Binary, "garbage"u8);
                    Envelopes.AssertError(await bad.ReadEnvelopeAsync(), ErrorCode.BadFrame, Malformed);
                    await bad.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, Malformed);
                    break;
                }

            case "garbage-bytes":
                {
                    // Not frames at all: 't' (0x74) reads as a header with RSV bits set.
                    await using var bad = await OpenAsync("bad");
                    await bad.SendRawAsync("this is not a websocket frame\r\n\r\n");
                    await bad.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, "RSV bits set without a negotiated extension");
                    break;
                }

            case "oversized-frame":
                {
                    await using var bad = await OpenAsync("bad");
                    Assert.Equal(epoch, await Exchange.SubscribeAsync(bad, "isolation.topic", requestId: 20, lastSeq: 1));
                    await bad.SendRawAsync(ClientFrame.Build(WebSocketOpcode.Binary, [], declaredLength: 1UL << 40));
                    await bad.ExpectCloseAsync(WebSocketCloseCode.MessageTooBig, "Message exceeds the size limit");
                    break;
                }

            case "oversized-raw-prefix":
                {
                    await using var bad = await RawClient.ConnectTcpAsync(_relay.TcpEndPoint);
                    await Exchange.HelloAsync(bad, "bad");
                    byte[] prefix = new byte[4];
                    BinaryPrimitives.WriteUInt32BigEndian(prefix, uint.MaxValue);
                    await bad.SendRawAsync(prefix);
                    Envelopes.AssertError(await bad.ReadEnvelopeAsync(), ErrorCode.TooLarge, $"frame of {uint.MaxValue} bytes exceeds the limit of {RelayFixture.MaxMessageBytes} bytes");
                    await bad.ExpectEndOfStreamAsync();
                    break;
                }
        }

        // The bad connection is gone; the healthy pair still completes full round trips (its subscription included).
        await Exchange.PublishAndReceiveAsync(publisher, "healthy-pub", subscriber, "isolation.topic", epoch, 2, requestId: 11);
        await publisher.SendEnvelopeAsync(Envelopes.Ping(12, [1, 2]));
        Envelopes.AssertPong(await publisher.ReadEnvelopeAsync(), 12, [1, 2]);
        await Exchange.PublishAndReceiveAsync(publisher, "healthy-pub", subscriber, "isolation.topic", epoch, 3, requestId: 13);
    }
}
