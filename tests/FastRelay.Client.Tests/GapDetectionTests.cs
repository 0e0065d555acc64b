using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;
using static FastRelay.Client.Tests.ReconnectTests;

namespace FastRelay.Client.Tests;

public sealed class GapDetectionTests
{
    [Fact]
    public async Task A_seq_gap_sends_a_resuming_sub_on_the_live_subscription_and_the_replay_fills_it_without_duplicates()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = AnsweredByTheTest;
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("ticks").Within();
        await session.NextAsync(FrameType.Sub);
        ulong epoch = server.Epoch;
        for (ulong seq = 1; seq <= 3; seq++)
        {
            await session.SendEventAsync("ticks", seq, [1], epoch: epoch);
        }

        await session.SendEventAsync("ticks", 6, [1], epoch: epoch); // 4 and 5 were dropped on the way
        await session.SendEventAsync("ticks", 7, [1], epoch: epoch); // still live until the server sees the resume

        // No UNSUB: the resuming SUB goes to the live subscription (so a presence topic sees no leave/join).
        var repair = await session.UntilAsync(FrameType.Sub);
        Assert.Equal([FrameType.Sub], repair.Select(f => f.Type));
        Assert.Equal("ticks", repair[0].Topic);
        Assert.Equal((epoch, 3UL), (repair[0].Envelope.Epoch, repair[0].Envelope.Seq));
        await session.SendAsync(new Envelope(FrameType.Recovered).WithRequestId(repair[0].RequestId).WithTopic("ticks").WithEpoch(epoch).WithSeq(7));
        for (ulong seq = 4; seq <= 8; seq++)
        {
            await session.SendEventAsync("ticks", seq, [1], epoch: epoch); // the replay, then live
        }

        Assert.Equal([1UL, 2, 3, 4, 5, 6, 7, 8], (await TakeAsync(subscription, 8)).Select(e => e.Seq));
        Assert.Equal(0, subscription.NotRecoveredCount);
        Assert.Equal(new StreamPosition(epoch, 8), subscription.Position);
    }

    [Fact]
    public async Task A_coalesced_partial_stands_for_the_seqs_it_merged_and_is_not_a_gap()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = AnsweredByTheTest;
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("tokens").Within();
        await session.NextAsync(FrameType.Sub);
        ulong epoch = server.Epoch;
        await session.SendEventAsync("tokens", 1, "a"u8.ToArray(), EventFlags.Partial, epoch);
        await session.SendEventAsync("tokens", 4, "bcd"u8.ToArray(), EventFlags.Partial | EventFlags.Coalesced, epoch); // 2..4 merged
        await session.SendEventAsync("tokens", 5, "e"u8.ToArray(), EventFlags.Final, epoch);

        Assert.Equal([1UL, 4, 5], (await TakeAsync(subscription, 3)).Select(e => e.Seq));
        await client.PingAsync().Within();
        Assert.DoesNotContain((await session.UntilAsync(FrameType.Ping)).Select(f => f.Type), t => t is FrameType.Unsub or FrameType.Sub);
        Assert.Equal(0, subscription.NotRecoveredCount);
    }

    [Fact]
    public async Task A_gap_the_server_cannot_replay_is_reported_and_the_stream_goes_on_from_its_current_position()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = AnsweredByTheTest;
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("ticks").Within();
        await session.NextAsync(FrameType.Sub);
        ulong epoch = server.Epoch;
        await session.SendEventAsync("ticks", 1, [1], epoch: epoch);
        await session.SendEventAsync("ticks", 50, [1], epoch: epoch);

        var repair = await session.UntilAsync(FrameType.Sub);
        Assert.Equal([FrameType.Sub], repair.Select(f => f.Type));
        await session.SendAsync(new Envelope(FrameType.NotRecovered).WithRequestId(repair[^1].RequestId).WithTopic("ticks").WithEpoch(epoch).WithSeq(60));
        await session.SendEventAsync("ticks", 61, [1], epoch: epoch);

        Assert.Equal([1UL, 61], (await TakeAsync(subscription, 2)).Select(e => e.Seq));
        var notice = await NextNoticeAsync(subscription);
        Assert.Equal((SubscriptionNoticeKind.NotRecovered, new StreamPosition(epoch, 1), new StreamPosition(epoch, 60)), (notice.Kind, notice.Expected, notice.Current));
    }

    [Fact]
    public async Task An_epoch_change_in_a_live_stream_is_reported_and_the_stream_goes_on_in_the_new_epoch()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var subscription = await client.SubscribeAsync("ticks").Within();
        var raised = new TaskCompletionSource<SubscriptionNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
        subscription.NotRecovered += (_, n) => raised.TrySetResult(n);
        ulong epoch = server.Epoch;
        await session.SendEventAsync("ticks", 1, [1], epoch: epoch);
        await session.SendEventAsync("ticks", 2, [1], epoch: epoch);
        await session.SendEventAsync("ticks", 1, [1], epoch: epoch + 10);
        await session.SendEventAsync("ticks", 2, [1], epoch: epoch + 10);

        var events = await TakeAsync(subscription, 4);
        Assert.Equal([(epoch, 1UL), (epoch, 2UL), (epoch + 10, 1UL), (epoch + 10, 2UL)], events.Select(e => (e.Epoch, e.Seq)));
        var notice = await raised.Task.Within();
        Assert.Equal((SubscriptionNoticeKind.EpochChanged, new StreamPosition(epoch, 2), new StreamPosition(epoch + 10, 0)), (notice.Kind, notice.Expected, notice.Current));
        Assert.Equal(epoch + 10, subscription.Epoch);
    }

    [Fact]
    public async Task A_gap_on_a_topic_seen_only_through_a_pattern_is_reported_not_repaired()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var pattern = await client.SubscribeAsync("rooms.*").Within();
        await session.NextAsync(FrameType.Sub);
        await session.SendEventAsync("rooms.a", 1, [1]);
        await session.SendEventAsync("rooms.a", 4, [1]);
        await session.SendEventAsync("rooms.a", 4, [1]); // a duplicate is still dropped

        Assert.Equal([1UL, 4], (await TakeAsync(pattern, 2)).Select(e => e.Seq));
        var notice = await NextNoticeAsync(pattern);
        Assert.Equal((SubscriptionNoticeKind.Gap, "rooms.a", 1UL, 3UL), (notice.Kind, notice.Topic, notice.Expected.Seq, notice.Current.Seq));
        await client.PingAsync().Within();
        Assert.DoesNotContain((await session.UntilAsync(FrameType.Ping)).Select(f => f.Type), t => t is FrameType.Unsub or FrameType.Sub);
    }

    /// <summary>The test answers UNSUB and resuming SUBs itself.</summary>
    private static Task<bool> AnsweredByTheTest(FakeSession session, ReceivedFrame frame) =>
        Task.FromResult(frame.Type == FrameType.Unsub || (frame.Type == FrameType.Sub && frame.Has(FieldMask.Seq)));
}
