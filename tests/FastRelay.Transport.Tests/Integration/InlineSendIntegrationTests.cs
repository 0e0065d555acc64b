using System.Buffers.Binary;
using FastRelay.Protocol;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// Shard threads writing a connection's frames inline at the end of their batch, racing the connection's own writer
/// (replies from the read loop, hand-offs when the socket is full) and each other (two shards, one subscriber):
/// every frame must arrive once, in order, and a subscriber that stops reading must still be closed without
/// stalling the shard.
/// </summary>
public sealed class InlineSendIntegrationTests : IAsyncLifetime
{
    private const int Publishers = 8;
    private const int PerPublisher = 400;

    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Many_publishers_to_one_subscriber_arrive_once_in_per_publisher_order(string transport)
    {
        // One topic per publisher, so the topics spread over both shards and both shard threads write to the one
        // subscriber inline, while its read loop queues PONGs and the writer takes over whatever does not fit.
        await using var subscriber = await _relay.ConnectAsync(transport);
        await Exchange.HelloAsync(subscriber, "inline-sub");
        var epochs = new ulong[Publishers];
        for (int p = 0; p < Publishers; p++)
        {
            epochs[p] = await Exchange.SubscribeAsync(subscriber, Topic(p), requestId: (ulong)(10 + p));
        }

        var publishers = new IEnvelopeClient[Publishers];
        for (int p = 0; p < Publishers; p++)
        {
            publishers[p] = await _relay.ConnectAsync(transport);
            await Exchange.HelloAsync(publishers[p], $"inline-pub-{p}");
        }

        long inlineBefore = _relay.Server.InlineWrites;
        var publishing = Enumerable.Range(0, Publishers).Select(p => PublishAllAsync(publishers[p], p)).ToArray();

        var next = new int[Publishers];
        int events = 0;
        ulong pingsSent = 0;
        ulong pongs = 0;
        while (events < Publishers * PerPublisher || pongs < pingsSent)
        {
            var e = await subscriber.ReadEnvelopeAsync();
            if (e.Type == FrameType.Pong)
            {
                Assert.Equal(++pongs, e.RequestId); // control replies keep their own order too
                continue;
            }

            Assert.True(e.Type == FrameType.Event, $"Expected an EVENT, got {Envelopes.Describe(e)}");
            int p = BinaryPrimitives.ReadInt32LittleEndian(e.Payload.Span);
            int i = BinaryPrimitives.ReadInt32LittleEndian(e.Payload.Span[4..]);
            Assert.InRange(p, 0, Publishers - 1);
            Assert.Equal(Topic(p), e.TopicString);
            Assert.True(i == next[p], $"publisher {p}: expected message {next[p]}, got {i} (lost, duplicated or reordered)");
            Assert.Equal((epochs[p], (ulong)(i + 1)), (e.Epoch, e.Seq));
            next[p]++;
            events++;
            if (events % 100 == 0 && events < Publishers * PerPublisher)
            {
                // A reply queued by the read loop, racing the shards' inline writes.
                await subscriber.SendEnvelopeAsync(Envelopes.Ping(++pingsSent, []));
            }
        }

        await Task.WhenAll(publishing).WaitAsync(SocketClient.ReadTimeout);
        Assert.All(next, n => Assert.Equal(PerPublisher, n));
        Assert.True(_relay.Server.InlineWrites > inlineBefore, "no frame went out inline: the test did not exercise the inline path");
        foreach (var publisher in publishers)
        {
            await publisher.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    public async Task Subscriber_that_stops_reading_is_closed_as_slow_consumer_and_the_shard_keeps_serving_others(string transport)
    {
        await using var relay = RelayFixture.Start(
            relay: o =>
            {
                o.OutboxMaxBytes = 64 * 1024;
                o.OutboxHardMaxBytes = 128 * 1024;
                o.SlowConsumerGrace = TimeSpan.FromMilliseconds(300);
            },
            // The stalled client starts reading once it is closed; the server gives a peer this long to take the close
            // before it drops the socket (abortively, with sends still pending). Generous, so a loaded machine does not
            // turn the graceful close under test into that reset.
            transport: t => t.CloseTimeout = TimeSpan.FromSeconds(10));

        // Subscribes, then never reads again; a tiny receive buffer makes the server's inline sends hit WouldBlock soon.
        await using var stalled = await relay.ConnectAsync(transport, receiveBufferBytes: 4096);
        await Exchange.HelloAsync(stalled, "stalled");
        await Exchange.SubscribeAsync(stalled, "firehose");

        await using var healthy = await relay.ConnectAsync(transport);
        await Exchange.HelloAsync(healthy, "healthy");
        ulong epoch = await Exchange.SubscribeAsync(healthy, "firehose");

        await using var publisher = await relay.ConnectAsync(transport);
        await Exchange.HelloAsync(publisher, "publisher");

        // Lock-step: publish one, read its ACK and the healthy subscriber's EVENT. Far more bytes than the kernel's
        // loopback buffers absorb, so the stalled subscriber's outbox must overflow; the loop is bounded.
        var payload = new byte[3000];
        const int maxEvents = 20_000;
        int published = 0;
        while (relay.Engine.SlowConsumers == 0 && published < maxEvents)
        {
            published++;
            BinaryPrimitives.WriteInt32LittleEndian(payload, published);
            await publisher.SendEnvelopeAsync(Envelopes.Pub((ulong)published, "firehose", payload));
            Envelopes.AssertPublished(await publisher.ReadEnvelopeAsync(), (ulong)published, epoch, (ulong)published);
            var e = await healthy.ReadEnvelopeAsync();
            Assert.Equal((epoch, (ulong)published), (e.Epoch, e.Seq));
            Assert.Equal(published, BinaryPrimitives.ReadInt32LittleEndian(e.Payload.Span));
        }

        Assert.Equal(1, relay.Engine.SlowConsumers);
        Assert.True(relay.Server.InlineHandOffs > 0, "no inline write was handed to the writer: the socket never filled");

        // The stalled client finds, behind what was already in flight, the end of its stream (after a close frame
        // 1008 on WebSocket): the server really let it go. It reads from now on, while the shard keeps serving the
        // healthy subscriber.
        var closed = ReadUntilClosedAsync(stalled, transport);
        for (int n = 0; n < 50; n++)
        {
            published++;
            BinaryPrimitives.WriteInt32LittleEndian(payload, published);
            await publisher.SendEnvelopeAsync(Envelopes.Pub((ulong)published, "firehose", payload));
            Envelopes.AssertPublished(await publisher.ReadEnvelopeAsync(), (ulong)published, epoch, (ulong)published);
            var e = await healthy.ReadEnvelopeAsync();
            Assert.Equal((epoch, (ulong)published), (e.Epoch, e.Seq));
        }

        await closed;
    }

    private static string Topic(int publisher) => $"inline-{publisher}";

    private static async Task PublishAllAsync(IEnvelopeClient publisher, int p)
    {
        var acks = Task.Run(async () =>
        {
            for (int i = 0; i < PerPublisher; i++)
            {
                var ack = await publisher.ReadEnvelopeAsync();
                Assert.True(ack.Type == FrameType.Ack && ack.RequestId == (ulong)(100 + i), $"publisher {p}: expected ACK {100 + i}, got {Envelopes.Describe(ack)}");
            }
        });

        var payload = new byte[8];
        for (int i = 0; i < PerPublisher; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(payload, p);
            BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(4), i);
            await publisher.SendEnvelopeAsync(Envelopes.Pub((ulong)(100 + i), Topic(p), payload));
        }

        await acks;
    }

    private static async Task ReadUntilClosedAsync(IEnvelopeClient client, string transport)
    {
        if (transport == "ws")
        {
            var ws = (WsClient)client;
            while (true)
            {
                var frame = await ws.ReadFrameAsync();
                if (frame.Opcode == FastRelay.Transport.WebSockets.WebSocketOpcode.Close)
                {
                    Assert.Equal(FastRelay.Transport.WebSockets.WebSocketCloseCode.PolicyViolation, frame.CloseCode);
                    await ws.ExpectEndOfStreamAsync();
                    return;
                }
            }
        }

        var raw = (RawClient)client;
        while (true)
        {
            try
            {
                await raw.ReadEnvelopeAsync();
            }
            catch (Xunit.Sdk.XunitException ex) when (ex.Message.StartsWith("The server closed the connection", StringComparison.Ordinal))
            {
                return;
            }
        }
    }
}
