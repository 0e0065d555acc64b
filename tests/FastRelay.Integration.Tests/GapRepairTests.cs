using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests;

/// <summary>
/// Gap repair in a live stream through the real server: the client discards some EVENT frames on arrival (as if the
/// server had dropped droppable events for a slow consumer), sees the seq jump, and resumes the topic in place
/// (a resuming SUB on the live subscription): RECOVERED replays the gap and later duplicates are dropped.
/// </summary>
public sealed class GapRepairTests
{
    [Fact]
    public async Task A_seq_gap_in_a_live_stream_is_repaired_in_order_without_duplicates_while_publishing_goes_on()
    {
        const int total = 5_000;
        await using var relay = TestRelay.Start(o => o.Retention.MaxEvents = 100_000);
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "writer" });
        var subscription = await reader.SubscribeAsync("ticks.eurusd");
        var discarded = new HashSet<ulong>(); // touched by the receive loop only
        reader.InterceptEnvelopeForTest = bytes =>
        {
            // Lose 1,000..1,099 and 3,000 the first time they come; the replays bring them back.
            EnvelopeCodec.TryDecode(bytes, out var e, out _);
            return e.Type == FrameType.Event && e.Seq is (>= 1_000 and < 1_100) or 3_000 && discarded.Add(e.Seq);
        };

        var publishing = Task.Run(async () =>
        {
            for (int i = 1; i <= total; i++)
            {
                await writer.PublishNoAckAsync("ticks.eurusd", BitConverter.GetBytes(i), new PublishOptions { Flags = EventFlags.Droppable });
            }
        });

        var events = await subscription.TakeAsync(total);
        await publishing.Within();
        Assert.Equal(101, discarded.Count);
        Assert.Equal(Enumerable.Range(1, total).Select(i => (ulong)i), events.Select(e => e.Seq));
        Assert.Equal(Enumerable.Range(1, total), events.Select(e => BitConverter.ToInt32(e.Payload.Span)));
        Assert.Equal(0, subscription.NotRecoveredCount);
        Assert.True(reader.IsConnected);
        var marker = await writer.PublishAsync("ticks.eurusd", BitConverter.GetBytes(0));
        Assert.Equal(marker.Seq, (await subscription.NextAsync()).Seq);
    }

    [Fact]
    public async Task A_gap_repair_on_a_presence_topic_keeps_the_subscription_and_announces_no_leave_or_join()
    {
        await using var relay = TestRelay.Start(o =>
        {
            o.Presence.Patterns = ["rooms.>"];
            o.Retention.MaxEvents = 1_000;
        });
        await using var observer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "observer" });
        var watching = await observer.SubscribeAsync("rooms.chat");
        Assert.Equal(("observer", PresenceChangeKind.Joined), Change(await watching.NextPresenceAsync()));
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "reader" });
        var subscription = await reader.SubscribeAsync("rooms.chat", new SubscribeOptions { PresenceInfo = "r"u8.ToArray() });
        Assert.Equal(("reader", PresenceChangeKind.Joined), Change(await watching.NextPresenceAsync()));
        var discarded = new HashSet<ulong>(); // touched by the receive loop only
        reader.InterceptEnvelopeForTest = bytes =>
        {
            EnvelopeCodec.TryDecode(bytes, out var e, out _);
            return e.Type == FrameType.Event && e.Seq is >= 5 and < 8 && discarded.Add(e.Seq); // lose 5..7 once
        };

        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "writer" });
        for (int i = 1; i <= 20; i++)
        {
            await writer.PublishAsync("rooms.chat", BitConverter.GetBytes(i));
        }

        var events = await subscription.TakeAsync(20);
        Assert.Equal(3, discarded.Count);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (ulong)i), events.Select(e => e.Seq));

        // The repair replayed into the live subscription: the observer saw no leave/join of the reader, so the next
        // presence change it gets is a later client's join.
        await using var late = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "late" });
        await late.SubscribeAsync("rooms.chat");
        Assert.Equal(("late", PresenceChangeKind.Joined), Change(await watching.NextPresenceAsync()));
        Assert.Equal(["late", "observer", "reader"], (await observer.GetPresenceAsync("rooms.chat").Within()).Select(m => m.ClientId).Order(StringComparer.Ordinal));
        Assert.Equal(0, subscription.NotRecoveredCount);
    }

    private static (string, PresenceChangeKind) Change(PresenceChange change) => (change.ClientId, change.Kind);

    [Fact]
    public async Task Droppable_events_the_server_dropped_for_a_stalled_reader_are_fetched_again_from_retention()
    {
        const int droppable = 1_000;
        await using var relay = TestRelay.Start(o =>
        {
            o.Retention.MaxEvents = 10_000;
            o.OutboxMaxBytes = 1 << 20; // past 1 MiB queued for the reader, its droppable events are dropped
        });
        await using var reader = await FastRelayClient.ConnectAsync(relay.UnixUri, new FastRelayClientOptions { SubscriptionBufferCapacity = 0 });
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var subscription = await reader.SubscribeAsync("frames.video");
        using var stalled = new ManualResetEventSlim(false);
        using var resumeReading = new ManualResetEventSlim(false);
        ulong highest = 0;
        int jumps = 0;
        reader.InterceptEnvelopeForTest = bytes =>
        {
            EnvelopeCodec.TryDecode(bytes, out var e, out _);
            if (e.Type == FrameType.Event)
            {
                if (!resumeReading.IsSet)
                {
                    stalled.Set();
                    resumeReading.Wait(); // the receive loop stops reading: socket buffers fill, then the server's outbox
                }

                jumps += e.Seq > highest + 1 ? 1 : 0;
                highest = Math.Max(highest, e.Seq);
            }

            return false;
        };

        var payload = new byte[8 * 1024];
        await writer.PublishAsync("frames.video", payload, new PublishOptions { Flags = EventFlags.Droppable });
        Assert.True(stalled.Wait(ClientSignals.Timeout));
        for (int i = 1; i < droppable; i++)
        {
            // 8 MB while the reader is stalled: far more than the socket buffers and the 1 MiB cap hold.
            await writer.PublishAsync("frames.video", payload, new PublishOptions { Flags = EventFlags.Droppable });
        }

        resumeReading.Set();
        await writer.PublishAsync("frames.video", payload); // critical: queued whatever the backlog, so it shows the gap

        var events = await subscription.TakeAsync(droppable + 1);
        Assert.Equal(Enumerable.Range(1, droppable + 1).Select(i => (ulong)i), events.Select(e => e.Seq));
        Assert.True(jumps > 0, "the server dropped nothing: the test did not exercise a gap");
        Assert.Equal(0, subscription.NotRecoveredCount);
        Assert.True(reader.IsConnected);
    }

    [Fact]
    public async Task A_gap_past_the_retention_window_is_reported_as_not_recovered_and_the_stream_goes_on()
    {
        await using var relay = TestRelay.Start(o => o.Retention.MaxEvents = 5);
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var subscription = await reader.SubscribeAsync("ticks.gbpusd");
        reader.InterceptEnvelopeForTest = bytes =>
        {
            EnvelopeCodec.TryDecode(bytes, out var e, out _);
            return e.Type == FrameType.Event && e.Seq is >= 3 and <= 12;
        };

        for (int i = 1; i <= 12; i++)
        {
            await writer.PublishAsync("ticks.gbpusd", new byte[] { (byte)i });
        }

        await reader.PingAsync(); // the PONG comes after event 12: everything up to it went through the interceptor
        reader.InterceptEnvelopeForTest = null;
        await writer.PublishAsync("ticks.gbpusd", new byte[] { 13 }); // reveals the gap; 3..8 left the window

        Assert.Equal([1UL, 2], (await subscription.TakeAsync(2)).Select(e => e.Seq));
        var notice = await subscription.NextNoticeAsync();
        Assert.Equal(SubscriptionNoticeKind.NotRecovered, notice.Kind);
        Assert.Equal(2UL, notice.Expected.Seq);
        Assert.Equal(13UL, notice.Current.Seq);
        await writer.PublishAsync("ticks.gbpusd", new byte[] { 14 });
        Assert.Equal(14UL, (await subscription.NextAsync()).Seq);
    }

    [Fact]
    public async Task With_RepairGaps_off_a_gap_is_reported_and_the_later_event_delivered_as_it_is()
    {
        await using var relay = TestRelay.Start();
        await using var reader = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var subscription = await reader.SubscribeAsync("ticks.usdjpy", new SubscribeOptions { RepairGaps = false });
        reader.InterceptEnvelopeForTest = bytes =>
        {
            EnvelopeCodec.TryDecode(bytes, out var e, out _);
            return e.Type == FrameType.Event && e.Seq == 2;
        };

        for (int i = 1; i <= 3; i++)
        {
            await writer.PublishAsync("ticks.usdjpy", new byte[] { (byte)i });
        }

        Assert.Equal([1UL, 3], (await subscription.TakeAsync(2)).Select(e => e.Seq));
        var notice = await subscription.NextNoticeAsync();
        Assert.Equal((SubscriptionNoticeKind.Gap, 1UL, 2UL), (notice.Kind, notice.Expected.Seq, notice.Current.Seq));
    }
}
