using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class ConsumerGroupTests() : GroupTestBase(shards: 2, pendingCapacity: 20)
{
    private Task<InProcessClient> Member(string id, uint credits) => JoinAsync(id, credits, "jobs");

    private static void Ack(InProcessClient c, ulong seq) =>
        c.Send(new Envelope(FrameType.GroupAck).WithTopic("jobs").WithGroup("workers").WithSeq(seq));

    [Fact]
    public async Task Each_event_goes_to_exactly_one_member_spread_over_all_of_them()
    {
        var members = new[] { await Member("w1", 100), await Member("w2", 100), await Member("w3", 100) };
        var pub = await Publisher();
        for (int i = 0; i < 30; i++)
        {
            await pub.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job-{i}"));
        }

        var perMember = new List<List<Received>>();
        foreach (var m in members)
        {
            perMember.Add(await Drain(m));
        }

        var all = perMember.SelectMany(x => x).Select(e => e.Seq).Order().ToArray();
        Assert.Equal(Enumerable.Range(1, 30).Select(i => (ulong)i), all); // each once, none lost
        Assert.All(perMember, got => Assert.InRange(got.Count, 5, 15)); // round robin spreads them
    }

    [Fact]
    public async Task Credits_bound_what_a_member_holds_and_acks_release_more()
    {
        var slow = await Member("slow", 2);
        var pub = await Publisher();
        for (int i = 0; i < 5; i++)
        {
            await pub.PublishAsync("jobs", [(byte)i]);
        }

        var first = await Drain(slow);
        Assert.Equal([1UL, 2UL], first.Select(e => e.Seq));
        Ack(slow, 1);
        var next = await Drain(slow);
        Assert.Equal([3UL], next.Select(e => e.Seq));
    }

    [Fact]
    public async Task An_event_not_acknowledged_within_the_lease_goes_to_another_member()
    {
        var a = await Member("a", 1);
        var pub = await Publisher();
        await pub.PublishAsync("jobs", [1]);
        Assert.Equal([1UL], (await Drain(a)).Select(e => e.Seq));
        var b = await Member("b", 1);

        Interlocked.Add(ref _nowMs, 30_001); // a's lease runs out
        await _engine.MaintainAsync();
        Assert.Equal([1UL], (await Drain(b)).Select(e => e.Seq));

        // a's late ACK is refused: the event is b's now.
        a.Send(new Envelope(FrameType.GroupAck).WithRequestId(9).WithTopic("jobs").WithGroup("workers").WithSeq(1));
        var late = await a.ReceiveAsync();
        Assert.Equal(ErrorCode.NotFound, late.ErrorCode);
    }

    [Fact]
    public async Task A_member_that_reports_progress_keeps_its_event_past_the_lease_until_it_stops_reporting()
    {
        var a = await Member("a", 1);
        var pub = await Publisher();
        await pub.PublishAsync("jobs", [1]);
        Assert.Equal([1UL], (await Drain(a)).Select(e => e.Seq));
        var b = await Member("b", 1);

        for (int round = 0; round < 3; round++)
        {
            Interlocked.Add(ref _nowMs, 20_000); // within the 30 s lease...
            a.Send(new Envelope(FrameType.GroupAck).WithRequestId(10 + (ulong)round).WithTopic("jobs").WithGroup("workers").WithSeq(1).WithFlags(EventFlags.InProgress));
            var reply = await a.ReceiveAsync();
            Assert.Equal(FrameType.Ack, reply.Type); // ...a says it is still working: the lease starts again
            Interlocked.Add(ref _nowMs, 20_000); // 40 s since the last report but one: past the original lease
            await _engine.MaintainAsync();
            Assert.Empty(await Drain(b));
        }

        Interlocked.Add(ref _nowMs, 30_001); // a goes quiet: the lease runs out and b gets the event
        await _engine.MaintainAsync();
        Assert.Equal([1UL], (await Drain(b)).Select(e => e.Seq));

        // Progress on an event the member no longer holds is refused like a late ACK.
        a.Send(new Envelope(FrameType.GroupAck).WithRequestId(20).WithTopic("jobs").WithGroup("workers").WithSeq(1).WithFlags(EventFlags.InProgress));
        Assert.Equal(ErrorCode.NotFound, (await a.ReceiveAsync()).ErrorCode);
    }

    [Fact]
    public async Task A_member_that_disconnects_mid_job_has_its_events_redelivered()
    {
        var doomed = await Member("doomed", 5);
        var pub = await Publisher();
        await pub.PublishAsync("jobs", [1]);
        await pub.PublishAsync("jobs", [2]);
        Assert.Equal(2, (await Drain(doomed)).Count);
        var survivor = await Member("survivor", 5);
        doomed.Session.OnTransportClosed();
        Assert.Equal([1UL, 2UL], (await Drain(survivor)).Select(e => e.Seq).Order());
    }

    [Fact]
    public async Task A_full_group_makes_publishers_back_off_and_other_topics_keep_flowing()
    {
        await Member("stuck", 1); // holds one, then 20 wait: the group is full
        var pub = await Publisher();
        for (int i = 0; i < 21; i++)
        {
            Assert.Equal(FrameType.Ack, (await pub.PublishAsync("jobs", [1])).Type);
        }

        var refused = await pub.PublishAsync("jobs", [1]);
        Assert.Equal(FrameType.Backoff, refused.Type);
        Assert.Contains("consumer group", refused.Reason);
        Assert.Equal(FrameType.Ack, (await pub.PublishAsync("other.topic", [1])).Type);
    }

    [Fact]
    public async Task After_max_deliveries_an_event_is_dead_lettered()
    {
        var ops = new InProcessClient(_engine, "ops");
        await ops.HelloAsync();
        await ops.SubscribeAsync("$dlq.workers");
        var a = await Member("a", 1);
        var pub = await Publisher();
        await pub.PublishAsync("jobs", "poison"u8.ToArray());
        for (int attempt = 0; attempt < 2; attempt++)
        {
            Assert.Single(await Drain(a)); // delivered, never acknowledged
            Interlocked.Add(ref _nowMs, 30_001);
            await _engine.MaintainAsync();
        }

        var letter = await ops.ReceiveAsync();
        Assert.Equal("$dlq.workers", letter.Topic);
        Assert.Equal("poison", Encoding.UTF8.GetString(letter.Payload));
        Assert.Empty(await Drain(a));
    }
}
