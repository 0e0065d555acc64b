using System.Threading.Channels;
using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

public sealed class SubscriptionTests
{
    [Fact]
    public async Task Subscribe_takes_epoch_and_start_seq_from_the_ack()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Epoch = 5;
        server.SetLastSeq("prices", 1234);
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        await using var subscription = await client.SubscribeAsync("prices").Within();

        var sub = await session.NextAsync(FrameType.Sub);
        Assert.Equal("prices", sub.Topic);
        Assert.NotEqual(0UL, sub.RequestId);
        Assert.Equal("prices", subscription.Topic);
        Assert.Equal(5UL, subscription.Epoch);
        Assert.Equal(1234UL, subscription.StartSeq);
        Assert.True(subscription.IsActive);
    }

    [Fact]
    public async Task An_event_sent_right_behind_the_sub_ack_is_not_missed()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Sub)
            {
                return false;
            }

            // ACK and the first event back to back: the client must be routing the topic before it reads the event.
            await session.SendAsync(new Envelope(FrameType.Ack).WithRequestId(frame.RequestId).WithTopic(frame.Topic!).WithEpoch(1).WithSeq(10));
            await session.SendEventAsync(frame.Topic!, 11, [42]);
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        await using var subscription = await client.SubscribeAsync("hot").Within();

        var first = (await TakeAsync(subscription, 1))[0];
        Assert.Equal(10UL, subscription.StartSeq);
        Assert.Equal(11UL, first.Seq);
    }

    [Fact]
    public async Task Subscribe_refused_by_the_server_throws_with_the_code()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Sub)
            {
                return false;
            }

            await session.SendAsync(new Envelope(FrameType.Error).WithRequestId(frame.RequestId).WithError(ErrorCode.LimitExceeded, "too many subscriptions"));
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        var error = await Assert.ThrowsAsync<FastRelayException>(() => client.SubscribeAsync("one-too-many")).Within();

        Assert.Equal(ErrorCode.LimitExceeded, error.ErrorCode);
        Assert.Equal("too many subscriptions", error.Reason);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task Events_are_routed_to_their_topic_subscription_in_seq_order()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        await using var left = await client.SubscribeAsync("left").Within();
        await using var right = await client.SubscribeAsync("right").Within();

        for (ulong seq = 1; seq <= 50; seq++)
        {
            await session.SendEventAsync("left", seq, BitConverter.GetBytes(seq));
            await session.SendEventAsync("right", seq, BitConverter.GetBytes(1000 + seq));
            await session.SendEventAsync("nobody-subscribed", seq, [1]);
        }

        var leftEvents = await TakeAsync(left, 50);
        var rightEvents = await TakeAsync(right, 50);
        Assert.All(leftEvents, e => Assert.Equal("left", e.Topic));
        Assert.All(rightEvents, e => Assert.Equal("right", e.Topic));
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (ulong)i), leftEvents.Select(e => e.Seq));
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (ulong)i), rightEvents.Select(e => e.Seq));
        Assert.Equal(1050UL, BitConverter.ToUInt64(rightEvents[^1].Payload.Span));
    }

    [Fact]
    public async Task Event_fields_travel_end_to_end_and_the_payload_is_an_owned_copy()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var publisher = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { ClientId = "pub-1" }).Within();
        await using var consumer = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { ClientId = "sub-1" }).Within();
        await using var subscription = await consumer.SubscribeAsync("agents/plan").Within();
        var payload = "step 1"u8.ToArray();
        var before = DateTimeOffset.UtcNow.AddSeconds(-5);

        var ack = await publisher.PublishAsync("agents/plan", payload,
            new PublishOptions { MessageId = "m-2", PrevEventId = "m-1", Flags = EventFlags.Final }).Within();
        payload[0] = (byte)'X'; // the client copied it when publishing

        var received = (await TakeAsync(subscription, 1))[0];
        Assert.Equal("agents/plan", received.Topic);
        Assert.Equal(ack.Epoch, received.Epoch);
        Assert.Equal(ack.Seq, received.Seq);
        Assert.Equal("pub-1", received.ClientId);
        Assert.Equal("m-2", received.MessageId);
        Assert.Equal("m-1", received.PrevEventId);
        Assert.Equal(EventFlags.Final, received.Flags);
        Assert.Equal("step 1"u8.ToArray(), received.Payload.ToArray());
        Assert.InRange(received.TimestampUtc, before, DateTimeOffset.UtcNow.AddSeconds(5));
        Assert.Equal(received.Timestamp, (received.TimestampUtc - DateTimeOffset.UnixEpoch).Ticks / 10);
    }

    [Fact]
    public async Task Callback_subscription_handles_events_in_order()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var handled = Channel.CreateUnbounded<ulong>();

        await using var subscription = await client.SubscribeAsync("cb", e => { handled.Writer.TryWrite(e.Seq); }).Within();
        for (int i = 0; i < 20; i++)
        {
            await client.PublishAsync("cb", new byte[] { (byte)i }).Within();
        }

        var seqs = new List<ulong>();
        while (seqs.Count < 20)
        {
            seqs.Add(await handled.Reader.ReadAsync().Within());
        }

        Assert.Equal(Enumerable.Range(1, 20).Select(i => (ulong)i), seqs);
        Assert.Throws<InvalidOperationException>(() => subscription.ReadAllAsync());
    }

    [Fact]
    public async Task A_throwing_callback_ends_its_subscription_with_the_exception()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        Func<RelayEvent, ValueTask> handler = _ => throw new InvalidDataException("handler bug");
        var subscription = await client.SubscribeAsync("boom", handler).Within();
        await client.PublishAsync("boom", new byte[] { 1 }).Within();

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => subscription.Completion).Within();
        Assert.Equal("handler bug", error.Message);
        Assert.False(subscription.IsActive);
        Assert.Equal("boom", (await session.NextAsync(FrameType.Unsub)).Topic);
    }

    [Fact]
    public async Task Unsubscribe_sends_unsub_and_ends_the_stream_normally()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("temp").Within();
        await session.SendEventAsync("temp", 1, [1]);
        await client.PingAsync().Within(); // the PONG follows the event on the wire: the event is buffered now

        await subscription.UnsubscribeAsync().Within();

        var unsub = await session.NextAsync(FrameType.Unsub);
        Assert.Equal("temp", unsub.Topic);
        Assert.False(subscription.IsActive);
        var drained = await TakeAllAsync(subscription); // the event buffered before the unsubscribe, then a normal end
        Assert.Equal([1UL], drained.Select(e => e.Seq));
        await subscription.Completion.Within();
        await subscription.UnsubscribeAsync().Within(); // idempotent
    }

    [Fact]
    public async Task Two_subscriptions_to_one_topic_both_receive_and_unsub_waits_for_the_last()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var first = await client.SubscribeAsync("shared").Within();
        var second = await client.SubscribeAsync("shared").Within();

        await client.PublishAsync("shared", new byte[] { 7 }).Within();
        Assert.Equal(1UL, (await TakeAsync(first, 1))[0].Seq);
        Assert.Equal(1UL, (await TakeAsync(second, 1))[0].Seq);

        await first.UnsubscribeAsync().Within();
        await client.PublishAsync("shared", new byte[] { 8 }).Within(); // still delivered to the second
        Assert.Equal(2UL, (await TakeAsync(second, 1))[0].Seq);
        await second.UnsubscribeAsync().Within();

        var unsub = await session.NextAsync(FrameType.Unsub);
        Assert.Equal("shared", unsub.Topic);
        Assert.Empty(session.Topics); // the server saw exactly one UNSUB, after the last local subscription went
    }

    [Fact]
    public async Task A_full_buffer_drops_droppable_events_and_ends_the_subscription_on_a_critical_one()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { SubscriptionBufferCapacity = 4 }).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("firehose").Within();

        for (ulong seq = 1; seq <= 4; seq++)
        {
            await session.SendEventAsync("firehose", seq, [1]); // fills the buffer; nobody reads
        }

        await session.SendEventAsync("firehose", 5, [1], EventFlags.Droppable);
        await session.SendEventAsync("firehose", 6, [1], EventFlags.Droppable);
        await session.SendEventAsync("firehose", 7, [1]); // critical: cannot be dropped, cannot wait

        Assert.Equal("firehose", (await session.NextAsync(FrameType.Unsub)).Topic);
        Assert.Equal(2, subscription.DroppedCount);
        var buffered = new List<ulong>();
        var error = await Assert.ThrowsAsync<FastRelaySlowConsumerException>(async () =>
        {
            await foreach (var e in subscription.ReadAllAsync())
            {
                buffered.Add(e.Seq);
            }
        }).Within();
        Assert.Equal([1UL, 2, 3, 4], buffered); // what was buffered is still delivered first
        Assert.Equal(4UL, error.LastDeliveredSeq);
        Assert.True(client.IsConnected); // other topics are unaffected
    }

    [Fact]
    public async Task A_subscribe_cancelled_before_its_ack_is_undone_with_an_unsub_when_the_ack_comes()
    {
        await using var server = FakeRelayServer.StartTcp();
        var subSeen = new TaskCompletionSource<ReceivedFrame>(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Intercept = (_, frame) =>
        {
            if (frame.Type != FrameType.Sub)
            {
                return Task.FromResult(false);
            }

            subSeen.TrySetResult(frame);
            return Task.FromResult(true); // the test answers later
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        using var cancel = new CancellationTokenSource();
        var subscribing = client.SubscribeAsync("late", cancel.Token);
        var sub = await subSeen.Task.Within();

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => subscribing).Within();
        await session.SendAsync(new Envelope(FrameType.Ack).WithRequestId(sub.RequestId).WithTopic("late").WithEpoch(1).WithSeq(0));

        Assert.Equal("late", (await session.NextAsync(FrameType.Unsub)).Topic); // the server must not keep sending it
    }

    private static async Task<List<RelayEvent>> TakeAsync(Subscription subscription, int count)
    {
        var events = new List<RelayEvent>(count);
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        await foreach (var relayEvent in subscription.ReadAllAsync(timeout.Token))
        {
            events.Add(relayEvent);
            if (events.Count == count)
            {
                break;
            }
        }

        return events;
    }

    private static async Task<List<RelayEvent>> TakeAllAsync(Subscription subscription)
    {
        var events = new List<RelayEvent>();
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        await foreach (var relayEvent in subscription.ReadAllAsync(timeout.Token))
        {
            events.Add(relayEvent);
        }

        return events;
    }
}
