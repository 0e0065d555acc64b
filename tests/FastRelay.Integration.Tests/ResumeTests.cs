using System.Buffers.Binary;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

/// <summary>Automatic reconnect with resume through the real server: RECOVERED replays, NOT_RECOVERED is reported.</summary>
public sealed class ResumeTests
{
    [Theory]
    [InlineData("tcp")]
    [InlineData("ws")]
    [InlineData("unix")]
    public async Task A_dropped_connection_reconnects_and_every_event_arrives_exactly_once_in_order_while_publishers_keep_going(string transport)
    {
        const int publishers = 2;
        const int perPublisher = 6_000;
        const int total = publishers * perPublisher;
        await using var relay = TestRelay.Start(o => o.Retention.MaxEvents = 100_000);
        var url = relay.UriFor(transport);
        // An unbounded buffer: this test is about the connection, not about a consumer starved of CPU by parallel tests.
        await using var reader = await FastRelayClient.ConnectAsync(url, new FastRelayClientOptions
        {
            ClientId = "reader",
            Reconnect = ClientSignals.FastReconnect,
            SubscriptionBufferCapacity = 0,
        });
        var subscription = await reader.SubscribeAsync("stream.orders");
        var writers = await Task.WhenAll(Enumerable.Range(0, publishers).Select(p =>
            FastRelayClient.ConnectAsync(url, new FastRelayClientOptions { ClientId = $"writer-{p}" })));
        try
        {
            // Publishers stay at most 1,000 events ahead of the reader, so they are still publishing during every
            // outage and resume below, whatever the machine's speed.
            using var window = new SemaphoreSlim(1_000);
            var publishing = writers.Select((writer, p) => Task.Run(async () =>
            {
                var payload = new byte[8];
                for (int i = 0; i < perPublisher; i++)
                {
                    await window.WaitAsync();
                    BinaryPrimitives.WriteInt32BigEndian(payload, p);
                    BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), i);
                    await writer.PublishNoAckAsync("stream.orders", payload);
                }
            })).ToArray();

            // Read everything, cutting the reader's connection twice mid-stream (the socket dies, no goodbye).
            var nextFromPublisher = new int[publishers];
            ulong expected = subscription.StartSeq + 1;
            using var timeout = new CancellationTokenSource(ClientSignals.Timeout);
            await foreach (var e in subscription.ReadAllAsync(timeout.Token))
            {
                window.Release();
                Assert.Equal(expected, e.Seq); // no gap, no duplicate, in order
                Assert.Equal(subscription.Epoch, e.Epoch);
                int p = BinaryPrimitives.ReadInt32BigEndian(e.Payload.Span);
                Assert.Equal(nextFromPublisher[p]++, BinaryPrimitives.ReadInt32BigEndian(e.Payload.Span[4..]));
                if (e.Seq is 2_000 or 7_000)
                {
                    await reader.WaitUntilConnectedAsync().Within();
                    reader.AbortConnectionForTest();
                }

                if (expected++ == total)
                {
                    break;
                }
            }

            await Task.WhenAll(publishing).Within();
            Assert.Equal(total + 1UL, expected);
            Assert.All(nextFromPublisher, n => Assert.Equal(perPublisher, n));
            await reader.WaitUntilConnectedAsync().Within();
            Assert.Equal(2, reader.ReconnectCount);
            Assert.Equal(0, subscription.NotRecoveredCount);
            Assert.True(subscription.IsActive);

            // Exactly once: the next event after the last one is a new marker, not a replayed duplicate.
            var marker = await writers[0].PublishAsync("stream.orders", new byte[] { 0xFF });
            Assert.Equal((ulong)total + 1, marker.Seq);
            Assert.Equal(marker.Seq, (await subscription.NextAsync()).Seq);
        }
        finally
        {
            await Task.WhenAll(writers.Select(w => w.DisposeAsync().AsTask()));
        }
    }

    [Fact]
    public async Task Resume_crosses_the_replay_live_seam_without_gap_or_duplicate_while_a_client_publishes()
    {
        const int total = 6_000;
        await using var relay = TestRelay.Start(o => o.Retention.MaxEvents = 100_000);
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions
        {
            ClientId = "reader",
            Reconnect = ClientSignals.FastReconnect,
            SubscriptionBufferCapacity = 0,
        });
        await using var writer = await FastRelayClient.ConnectAsync(relay.WebSocketUri, new FastRelayClientOptions { ClientId = "writer" });
        var gate = new ReconnectGate(reader);
        var subscription = await reader.SubscribeAsync("seam.topic");
        var outage = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backlogPublished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var publishing = Task.Run(async () =>
        {
            // Acknowledged publishes through the client, up to 64 in flight. Events 1,001..2,500 are published while
            // the reader is away (the backlog its resume replays); the rest while it replays and catches up.
            var inFlight = new List<Task<PublishAck>>();
            for (int i = 1; i <= total; i++)
            {
                inFlight.Add(writer.PublishAsync("seam.topic", BitConverter.GetBytes(i)));
                if (inFlight.Count == 64 || i is 1_000 or 2_500)
                {
                    await Task.WhenAll(inFlight);
                    inFlight.Clear();
                }

                if (i == 1_000)
                {
                    await outage.Task;
                }
                else if (i == 2_500)
                {
                    backlogPublished.TrySetResult();
                }
            }

            await Task.WhenAll(inFlight);
        });

        ulong expected = 1;
        using var timeout = new CancellationTokenSource(ClientSignals.Timeout);
        await foreach (var e in subscription.ReadAllAsync(timeout.Token))
        {
            Assert.Equal(expected, e.Seq);
            Assert.Equal((int)e.Seq, BitConverter.ToInt32(e.Payload.Span));
            if (e.Seq == 1_000)
            {
                reader.AbortConnectionForTest();
                await gate.Reached;
                outage.TrySetResult();
                await backlogPublished.Task.Within();
                gate.Release(); // resume while the writer is still publishing: replay, then live, one step on the shard
            }

            if (expected++ == total)
            {
                break;
            }
        }

        await publishing.Within();
        Assert.Equal(total + 1UL, expected);
        Assert.Equal(0, subscription.NotRecoveredCount);
        Assert.Equal(1, reader.ReconnectCount);
        var marker = await writer.PublishAsync("seam.topic", BitConverter.GetBytes(0));
        Assert.Equal(marker.Seq, (await subscription.NextAsync()).Seq);
    }

    [Fact]
    public async Task Resume_beyond_retention_reports_NotRecovered_with_the_expected_and_current_positions_and_goes_on_live()
    {
        await using var relay = TestRelay.Start(o => o.Retention.MaxEvents = 10);
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "reader", Reconnect = ClientSignals.FastReconnect });
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var gate = new ReconnectGate(reader);
        var subscription = await reader.SubscribeAsync("short.memory");
        var raised = new TaskCompletionSource<SubscriptionNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
        subscription.NotRecovered += (_, notice) => raised.TrySetResult(notice);
        for (int i = 0; i < 5; i++)
        {
            await writer.PublishAsync("short.memory", new byte[] { 1 });
        }

        Assert.Equal(5UL, (await subscription.TakeAsync(5))[^1].Seq);
        ulong epoch = subscription.Epoch;

        reader.AbortConnectionForTest();
        await gate.Reached;
        for (int i = 0; i < 50; i++)
        {
            await writer.PublishAsync("short.memory", new byte[] { 2 }); // seqs 6..55; only 46..55 are retained
        }

        var reconnected = reader.NextReconnectAsync();
        gate.Release();
        await reconnected;

        var notice = await subscription.NextNoticeAsync();
        Assert.Equal(SubscriptionNoticeKind.NotRecovered, notice.Kind);
        Assert.Equal("short.memory", notice.Topic);
        Assert.Equal(new StreamPosition(epoch, 5), notice.Expected);
        Assert.Equal(new StreamPosition(epoch, 55), notice.Current);
        Assert.Equal(notice, await raised.Task.Within());
        Assert.Equal(1, subscription.NotRecoveredCount);
        Assert.True(subscription.IsActive);

        // The stream goes on live after the current position: none of the lost events sneaks in.
        var next = await writer.PublishAsync("short.memory", new byte[] { 3 });
        var e = await subscription.NextAsync();
        Assert.Equal(56UL, e.Seq);
        Assert.Equal(next.Seq, e.Seq);
        Assert.Equal(new StreamPosition(epoch, 56), subscription.Position);
    }

    [Fact]
    public async Task Resume_after_the_server_forgot_the_topic_reports_the_new_epoch_and_goes_on_from_it()
    {
        await using var relay = TestRelay.Start(o =>
        {
            o.Retention.MaxEvents = 0;
            o.Presence.Patterns = ["fleeting.>"]; // the leave announcement says when the server dropped the reader
        });
        await using var observer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "observer" });
        var watching = await observer.SubscribeAsync("fleeting.topic");
        await using var reader = await FastRelayClient.ConnectAsync(relay.UnixUri, new FastRelayClientOptions { ClientId = "resumer", Reconnect = ClientSignals.FastReconnect });
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var gate = new ReconnectGate(reader);
        var subscription = await reader.SubscribeAsync("fleeting.topic");
        for (int i = 0; i < 3; i++)
        {
            await writer.PublishAsync("fleeting.topic", new byte[] { 1 });
        }

        Assert.Equal(3UL, (await subscription.TakeAsync(3))[^1].Seq);
        ulong oldEpoch = subscription.Epoch;

        reader.AbortConnectionForTest();
        await gate.Reached;
        while ((await watching.NextPresenceAsync()) is not { ClientId: "resumer", Kind: PresenceChangeKind.Left })
        {
        }

        await watching.UnsubscribeAsync(); // the topic has no subscriber left and no history
        await relay.Engine.MaintainAsync(); // so the server forgets it: it comes back with a new epoch
        Assert.Null(await relay.Engine.GetTopicPositionAsync(0, "fleeting.topic"));

        gate.Release();
        var notice = await subscription.NextNoticeAsync();
        Assert.Equal(SubscriptionNoticeKind.NotRecovered, notice.Kind);
        Assert.Equal(new StreamPosition(oldEpoch, 3), notice.Expected);
        Assert.NotEqual(oldEpoch, notice.Current.Epoch);
        Assert.Equal(0UL, notice.Current.Seq);
        Assert.Equal(notice.Current.Epoch, subscription.Epoch);

        var ack = await writer.PublishAsync("fleeting.topic", new byte[] { 2 });
        var e = await subscription.NextAsync();
        Assert.Equal(new StreamPosition(notice.Current.Epoch, 1), new StreamPosition(e.Epoch, e.Seq));
        Assert.Equal(ack.Epoch, e.Epoch);
    }

    [Fact]
    public async Task ResumeFrom_a_kept_position_replays_what_a_new_client_missed_and_reports_what_is_gone()
    {
        await using var relay = TestRelay.Start(o => o.Retention.MaxEvents = 20);
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        StreamPosition kept;
        await using (var first = await FastRelayClient.ConnectAsync(relay.TcpUri))
        {
            var subscription = await first.SubscribeAsync("orders.eu");
            for (int i = 1; i <= 3; i++)
            {
                await writer.PublishAsync("orders.eu", new byte[] { (byte)i });
            }

            await subscription.TakeAsync(3);
            kept = subscription.Position;
        }

        for (int i = 4; i <= 8; i++)
        {
            await writer.PublishAsync("orders.eu", new byte[] { (byte)i });
        }

        await using var second = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var resumed = await second.SubscribeAsync("orders.eu", new SubscribeOptions { ResumeFrom = kept });
        Assert.Equal(3UL, resumed.StartSeq);
        await writer.PublishAsync("orders.eu", new byte[] { 9 });
        Assert.Equal([4UL, 5, 6, 7, 8, 9], (await resumed.TakeAsync(6)).Select(e => e.Seq));
        Assert.Equal(0, resumed.NotRecoveredCount);

        // A position older than the retention window: NOT_RECOVERED, live from the current position.
        for (int i = 10; i <= 40; i++)
        {
            await writer.PublishAsync("orders.eu", new byte[] { (byte)i });
        }

        await using var third = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var late = await third.SubscribeAsync("orders.eu", new SubscribeOptions { ResumeFrom = kept });
        var notice = await late.NextNoticeAsync();
        Assert.Equal(SubscriptionNoticeKind.NotRecovered, notice.Kind);
        Assert.Equal(kept, notice.Expected);
        Assert.Equal(new StreamPosition(kept.Epoch, 40), notice.Current);
        Assert.Equal(40UL, late.StartSeq);
        await writer.PublishAsync("orders.eu", new byte[] { 41 });
        Assert.Equal(41UL, (await late.NextAsync()).Seq);
    }

    [Fact]
    public async Task Publishes_that_failed_with_the_connection_are_retried_with_their_message_id_and_delivered_exactly_once()
    {
        const int messages = 1_500;
        await using var relay = TestRelay.Start();
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var subscription = await reader.SubscribeAsync("payments");
        // No ClientId: the server assigns one, and the reconnect must keep it for dedup to recognise the retries.
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { Reconnect = ClientSignals.FastReconnect });
        string assignedId = writer.ClientId;
        Assert.StartsWith("anon-", assignedId);

        int failures = 0;
        var pending = new List<Task<PublishAck>>();
        for (int i = 0; i < messages; i++)
        {
            if (i is 525 or 1_025)
            {
                writer.AbortConnectionForTest(); // the PUBs in flight fail; some may have been accepted already
            }

            pending.Add(PublishUntilAcknowledgedAsync($"payment-{i}"));
            if (pending.Count == 50)
            {
                await Task.WhenAll(pending).Within();
                pending.Clear();
            }
        }

        await Task.WhenAll(pending).Within();
        Assert.True(failures > 0, "the dropped connections failed no publish: nothing was retried");
        Assert.Equal(assignedId, writer.ClientId);
        Assert.Equal(2, writer.ReconnectCount);

        var seen = new HashSet<string>();
        foreach (var e in await subscription.TakeAsync(messages))
        {
            Assert.True(seen.Add(e.MessageId!), $"{e.MessageId} was delivered twice");
        }

        var marker = await writer.PublishAsync("payments", new byte[] { 0 });
        Assert.Equal(marker.Seq, (await subscription.NextAsync()).Seq);
        Assert.Equal((ulong)messages + 1, marker.Seq); // every message sequenced exactly once, retries deduplicated

        async Task<PublishAck> PublishUntilAcknowledgedAsync(string messageId)
        {
            while (true)
            {
                try
                {
                    return await writer.PublishAsync("payments", new byte[] { 1 }, new PublishOptions { MessageId = messageId });
                }
                catch (FastRelayConnectionException)
                {
                    Interlocked.Increment(ref failures);
                    await writer.WaitUntilConnectedAsync().Within();
                }
            }
        }
    }
}
