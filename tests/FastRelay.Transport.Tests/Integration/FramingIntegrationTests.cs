using System.Text;
using FastRelay.Transport.Tests.WebSockets;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>RFC 6455 framing against a running relay: control frames, fragmentation, and every violation's close code.</summary>
public sealed class FramingIntegrationTests : IAsyncLifetime
{
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
    public async Task Unmasked_client_frame_is_closed_1002()
    {
        await using var client = await OpenAsync("unmasked");

        await client.SendFrameAsync(WebSocketOpcode.Binary, Envelopes.Ping(5, [1]), masked: false);

        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, "Client frames must be masked");
    }

    [Theory]
    [InlineData(0b100)]
    [InlineData(0b010)]
    [InlineData(0b001)]
    public async Task Frame_with_an_RSV_bit_is_closed_1002(byte rsv)
    {
        await using var client = await OpenAsync("rsv");

        await client.SendFrameAsync(WebSocketOpcode.Binary, Envelopes.Ping(5, [1]), rsv: rsv);

        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, "RSV bits set without a negotiated extension");
    }

    [Theory]
    [InlineData(0x3)]
    [InlineData(0x7)]
    [InlineData(0xB)]
    [InlineData(0xF)]
    public async Task Reserved_opcode_is_closed_1002(byte opcode)
    {
        await using var client = await OpenAsync("opcode");

        await client.SendFrameAsync((WebSocketOpcode)opcode, [1, 2, 3]);

        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, "Reserved opcode");
    }

    [Fact]
    public async Task Fragmented_binary_message_with_a_ping_between_fragments_is_one_envelope()
    {
        await using var subscriber = await OpenAsync("frag-sub");
        ulong epoch = await Exchange.SubscribeAsync(subscriber, "frag.topic");
        await using var publisher = await OpenAsync("frag-pub");

        byte[] payload = Encoding.UTF8.GetBytes(new string('x', 300));
        byte[] pub = Envelopes.Pub(41, "frag.topic", payload);
        byte[] ping = "between fragments"u8.ToArray();
        await publisher.SendRawAsync(ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, pub.AsSpan(0, 5), fin: false),
            ClientFrame.Build(WebSocketOpcode.Ping, ping),
            ClientFrame.Build(WebSocketOpcode.Continuation, pub.AsSpan(5, 200), fin: false, key: [1, 2, 3, 4]),
            ClientFrame.Build(WebSocketOpcode.Continuation, pub.AsSpan(205), fin: true, key: [9, 8, 7, 6])));

        var pong = await publisher.ReadFrameAsync();
        Assert.Equal(new ServerFrame(true, WebSocketOpcode.Pong, ping), pong, ServerFrameComparer.Instance);
        Envelopes.AssertPublished(await publisher.ReadEnvelopeAsync(), 41, epoch, 1);
        Envelopes.AssertEvent(await subscriber.ReadEnvelopeAsync(), "frag.topic", epoch, 1, "frag-pub", payload);
    }

    [Fact]
    public async Task Fragments_sent_in_separate_writes_are_reassembled()
    {
        await using var client = await OpenAsync("frag-slow");
        byte[] payload = new byte[1000];
        Random.Shared.NextBytes(payload);
        byte[] ping = Envelopes.Ping(12, payload);

        // Each fragment reaches the server on its own read, the payload split inside a frame header and its payload.
        await client.SendRawAsync(ClientFrame.Build(WebSocketOpcode.Binary, ping.AsSpan(0, 400), fin: false));
        byte[] last = ClientFrame.Build(WebSocketOpcode.Continuation, ping.AsSpan(400), fin: true);
        await client.SendRawAsync(last.AsMemory(0, 3));
        await client.SendRawAsync(last.AsMemory(3, 300));
        await client.SendRawAsync(last.AsMemory(303));

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 12, payload);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(125)]
    public async Task Ping_is_answered_with_a_pong_carrying_the_same_payload(int length)
    {
        await using var client = await OpenAsync("pinger");
        byte[] payload = [.. Enumerable.Range(0, length).Select(i => (byte)(i * 7))];

        await client.SendFrameAsync(WebSocketOpcode.Ping, payload);

        Assert.Equal(new ServerFrame(true, WebSocketOpcode.Pong, payload), await client.ReadFrameAsync(), ServerFrameComparer.Instance);
    }

    [Fact]
    public async Task Ping_before_hello_is_answered_and_does_not_count_as_the_first_frame()
    {
        await using var client = await WsClient.OpenAsync(_relay.WebSocketEndPoint);

        await client.SendFrameAsync(WebSocketOpcode.Ping, "early"u8);
        Assert.Equal(new ServerFrame(true, WebSocketOpcode.Pong, "early"u8.ToArray()), await client.ReadFrameAsync(), ServerFrameComparer.Instance);

        await Exchange.HelloAsync(client, "after-ping");
    }

    [Fact]
    public async Task Unsolicited_pong_is_ignored()
    {
        await using var client = await OpenAsync("ponger");

        await client.SendFrameAsync(WebSocketOpcode.Pong, "heartbeat"u8);
        await client.SendEnvelopeAsync(Envelopes.Ping(3, [42]));

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 3, [42]);
    }

    [Theory]
    [InlineData((ushort)1000, "bye")]
    [InlineData((ushort)1001, "")]
    [InlineData((ushort)4000, "app-defined")]
    public async Task Client_close_is_echoed_and_the_server_closes_the_tcp_connection(ushort code, string reason)
    {
        await using var client = await OpenAsync("closer");

        await client.SendCloseAsync(code, reason);

        await client.ExpectCloseAsync(code, "", reply: false);
    }

    [Fact]
    public async Task Client_close_without_a_body_is_answered_1000()
    {
        await using var client = await OpenAsync("closer");

        await client.SendFrameAsync(WebSocketOpcode.Close, []);

        await client.ExpectCloseAsync(WebSocketCloseCode.NormalClosure, "", reply: false);
    }

    [Fact]
    public async Task Close_with_an_invalid_code_is_closed_1002()
    {
        await using var client = await OpenAsync("bad-closer");

        await client.SendCloseAsync(1005, "reserved");

        await client.ExpectCloseAsync(WebSocketCloseCode.ProtocolError, "Invalid close code");
    }

    [Fact]
    public async Task Text_message_with_invalid_utf8_is_closed_1007()
    {
        await using var client = await OpenAsync("bad-text");

        await client.SendFrameAsync(WebSocketOpcode.Text, [0x68, 0x69, 0xC3, 0x28]);

        await client.ExpectCloseAsync(WebSocketCloseCode.InvalidPayload, "Text message is not valid UTF-8");
    }

    [Fact]
    public async Task Text_message_split_inside_a_character_is_valid_utf8_and_still_refused_1003()
    {
        await using var client = await OpenAsync("text");
        byte[] text = Encoding.UTF8.GetBytes("héllo");

        await client.SendRawAsync(ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Text, text.AsSpan(0, 2), fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, text.AsSpan(2))));

        await client.ExpectCloseAsync(WebSocketCloseCode.UnsupportedData, "text messages are not accepted: send each envelope as one binary message");
    }

    [Fact]
    public async Task Valid_text_message_is_closed_1003()
    {
        await using var client = await OpenAsync("text");

        await client.SendFrameAsync(WebSocketOpcode.Text, "{\"type\":\"pub\"}"u8);

        await client.ExpectCloseAsync(WebSocketCloseCode.UnsupportedData, "text messages are not accepted: send each envelope as one binary message");
    }

    [Fact]
    public async Task Message_over_MaxMessageBytes_is_closed_1009()
    {
        await using var client = await OpenAsync("big");

        await client.SendFrameAsync(WebSocketOpcode.Binary, new byte[RelayFixture.MaxMessageBytes + 1]);

        await client.ExpectCloseAsync(WebSocketCloseCode.MessageTooBig, "Message exceeds the size limit");
    }

    [Fact]
    public async Task Fragmented_message_growing_over_MaxMessageBytes_is_closed_1009()
    {
        await using var client = await OpenAsync("big-fragments");
        byte[] half = new byte[(RelayFixture.MaxMessageBytes / 2) + 1];

        await client.SendRawAsync(ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, half, fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, half)));

        await client.ExpectCloseAsync(WebSocketCloseCode.MessageTooBig, "Message exceeds the size limit");
    }

    [Fact]
    public async Task Message_of_exactly_MaxMessageBytes_is_accepted()
    {
        await using var client = await OpenAsync("limit");
        int overhead = Envelopes.Ping(77, new byte[300]).Length - 300; // bin16, as for the payload below
        byte[] payload = new byte[RelayFixture.MaxMessageBytes - overhead];
        Random.Shared.NextBytes(payload);
        byte[] envelope = Envelopes.Ping(77, payload);
        Assert.Equal(RelayFixture.MaxMessageBytes, envelope.Length);

        await client.SendEnvelopeAsync(envelope);

        Envelopes.AssertPong(await client.ReadEnvelopeAsync(), 77, payload);
    }

    private sealed class ServerFrameComparer : IEqualityComparer<ServerFrame>
    {
        public static readonly ServerFrameComparer Instance = new();

        public bool Equals(ServerFrame? x, ServerFrame? y) =>
            x is not null && y is not null && x.Fin == y.Fin && x.Opcode == y.Opcode && x.Payload.AsSpan().SequenceEqual(y.Payload);

        public int GetHashCode(ServerFrame obj) => HashCode.Combine(obj.Fin, obj.Opcode, obj.Payload.Length);
    }
}
