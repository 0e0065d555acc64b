using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

public sealed class PatternGroupTests() : GroupTestBase(shards: 4, pendingCapacity: 8)
{
    /// <summary>Two topics under "jobs." that live on different shards.</summary>
    private (string A, string B) TwoShardTopics()
    {
        string a = "jobs.t0";
        int shardOfA = _engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(a));
        for (int i = 1; ; i++)
        {
            string b = $"jobs.t{i}";
            if (_engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(b)) != shardOfA)
            {
                return (a, b);
            }
        }
    }

    private Task<InProcessClient> Member(string id, uint credits, string pattern = "jobs.*", string group = "workers") =>
        JoinAsync(id, credits, pattern, group);

    private static async Task<Received> Ack(InProcessClient c, string topic, ulong seq, string group = "workers")
    {
        c.Send(new Envelope(FrameType.GroupAck).WithRequestId(c.NextRequestId()).WithTopic(topic).WithGroup(group).WithSeq(seq));
        return await c.ReceiveAsync();
    }

    [Fact]
    public void Patterns_overlap_when_some_topic_matches_both()
    {
        static bool Overlap(string a, string b) => TopicPattern.Parse(a).Overlaps(TopicPattern.Parse(b)) && TopicPattern.Parse(b).Overlaps(TopicPattern.Parse(a));
        Assert.True(Overlap("jobs.*", "jobs.>"));
        Assert.True(Overlap("jobs.*", "*.a"));
        Assert.True(Overlap(">", "a.b.c"));
        Assert.False(Overlap("jobs.*", "jobs.*.x"));
        Assert.False(Overlap("jobs.*", "tasks.*"));
        Assert.False(Overlap("a.>", "a"));
    }

    [Fact]
    public async Task Events_of_every_matching_topic_on_every_shard_go_to_exactly_one_member()
    {
        var (a, b) = TwoShardTopics();
        var members = new[] { await Member("w1", 100), await Member("w2", 100) };
        var pub = await Publisher();
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(FrameType.Ack, (await pub.PublishAsync(a, [(byte)i])).Type);
            Assert.Equal(FrameType.Ack, (await pub.PublishAsync(b, [(byte)i])).Type);
        }

        Assert.Equal(FrameType.Ack, (await pub.PublishAsync("other.x", [1])).Type);
        var got = new List<Received>();
        foreach (var m in members)
        {
            var mine = await Drain(m);
            Assert.InRange(mine.Count, 5, 15); // in turn
            got.AddRange(mine);
        }

        Assert.Equal(20, got.Count);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (ulong)i), got.Where(e => e.Topic == a).Select(e => e.Seq).Order());
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (ulong)i), got.Where(e => e.Topic == b).Select(e => e.Seq).Order());
    }

    [Fact]
    public async Task Credits_bound_what_a_member_holds_across_topics()
    {
        var (a, b) = TwoShardTopics();
        var worker = await Member("w", 1);
        var pub = await Publisher();
        await pub.PublishAsync(a, [1]);
        await pub.PublishAsync(b, [2]);
        var first = Assert.Single(await Drain(worker));
        Assert.Equal(a, first.Topic);
        Assert.Equal((1, 1, 1), await _engine.GetGroupStateAsync(0, "jobs.*", "workers"));

        worker.Send(new Envelope(FrameType.GroupAck).WithTopic(a).WithGroup("workers").WithSeq(1)); // no reply: only the next event
        var second = Assert.Single(await Drain(worker));
        Assert.Equal(b, second.Topic);
    }

    [Fact]
    public async Task Lease_expiry_redelivers_to_another_member_and_the_late_ack_is_refused()
    {
        var (_, b) = TwoShardTopics();
        var first = await Member("first", 1);
        var pub = await Publisher();
        await pub.PublishAsync(b, [1]);
        Assert.Single(await Drain(first));
        var second = await Member("second", 1);

        Interlocked.Add(ref _nowMs, 30_001);
        await _engine.MaintainAsync();
        var redelivered = Assert.Single(await Drain(second));
        Assert.Equal(b, redelivered.Topic);
        Assert.Equal(ErrorCode.NotFound, (await Ack(first, b, 1)).ErrorCode);
        Assert.Equal(FrameType.Ack, (await Ack(second, b, 1)).Type);
    }

    [Fact]
    public async Task A_member_that_disconnects_hands_its_events_back()
    {
        var (a, b) = TwoShardTopics();
        var doomed = await Member("doomed", 5);
        var pub = await Publisher();
        await pub.PublishAsync(a, [1]);
        await pub.PublishAsync(b, [2]);
        Assert.Equal(2, (await Drain(doomed)).Count);
        var survivor = await Member("survivor", 5);
        doomed.Session.OnTransportClosed();
        Assert.Equal([a, b], (await Drain(survivor)).Select(e => e.Topic!).Order());
    }

    [Fact]
    public async Task A_full_pattern_group_backs_off_matching_topics_only_and_nothing_accepted_is_lost()
    {
        var (a, b) = TwoShardTopics();
        var stuck = await Member("stuck", 1); // holds one; 8 more wait: full
        var pub = await Publisher();
        for (int i = 0; i < 9; i++)
        {
            Assert.Equal(FrameType.Ack, (await pub.PublishAsync(i % 2 == 0 ? a : b, [(byte)i])).Type);
        }

        var refused = await pub.PublishAsync(b, [1]);
        Assert.Equal(FrameType.Backoff, refused.Type);
        Assert.Contains("consumer group", refused.Reason);
        Assert.Equal(FrameType.Backoff, (await pub.PublishAsync(a, [1])).Type);
        Assert.Equal(FrameType.Ack, (await pub.PublishAsync("other.topic", [1])).Type);

        // Draining the group lets every accepted event through, once.
        var seen = new List<(string, ulong)>();
        for (int i = 0; i < 9; i++)
        {
            var e = Assert.Single(await Drain(stuck));
            seen.Add((e.Topic!, e.Seq));
            stuck.Send(new Envelope(FrameType.GroupAck).WithTopic(e.Topic!).WithGroup("workers").WithSeq(e.Seq)); // no reply: the next event follows
        }

        Assert.Equal(9, seen.Distinct().Count());
        Assert.Equal(FrameType.Ack, (await pub.PublishAsync(b, [1])).Type);
    }

    [Fact]
    public async Task Tenants_and_non_matching_topics_do_not_reach_the_group()
    {
        var worker = await Member("w", 10);
        var pub = await Publisher();
        await pub.PublishAsync("jobs.a.b", [1]); // '*' is one segment
        await pub.PublishAsync("tasks.a", [1]);
        Assert.Empty(await Drain(worker));
        Assert.Equal((1, 0, 0), await _engine.GetGroupStateAsync(0, "jobs.*", "workers"));
        Assert.Null(await _engine.GetGroupStateAsync(1, "jobs.*", "workers"));
    }

    [Fact]
    public async Task A_topic_group_and_a_pattern_group_of_the_same_name_both_get_the_event()
    {
        var (a, _) = TwoShardTopics();
        var viaPattern = await Member("p", 5);
        var viaTopic = await Member("t", 5, pattern: a);
        var pub = await Publisher();
        await pub.PublishAsync(a, [1]);
        Assert.Single(await Drain(viaPattern));
        Assert.Single(await Drain(viaTopic));
    }

    [Fact]
    public async Task One_connection_cannot_join_overlapping_groups_of_one_name()
    {
        var c = await Member("c", 5);
        c.Send(new Envelope(FrameType.Sub).WithRequestId(c.NextRequestId()).WithTopic("jobs.>").WithGroup("workers"));
        Assert.Equal(ErrorCode.Conflict, (await c.ReceiveAsync()).ErrorCode);
        c.Send(new Envelope(FrameType.Sub).WithRequestId(c.NextRequestId()).WithTopic("jobs.a").WithGroup("workers"));
        Assert.Equal(ErrorCode.Conflict, (await c.ReceiveAsync()).ErrorCode);
        c.Send(new Envelope(FrameType.Sub).WithRequestId(c.NextRequestId()).WithTopic("jobs.>").WithGroup("others"));
        Assert.Equal(FrameType.Ack, (await c.ReceiveAsync()).Type);
    }

    [Fact]
    public async Task A_group_nobody_is_in_is_forgotten_and_stops_taking_events()
    {
        var (a, _) = TwoShardTopics();
        var worker = await Member("w", 5);
        worker.Send(new Envelope(FrameType.Unsub).WithRequestId(worker.NextRequestId()).WithTopic("jobs.*").WithGroup("workers"));
        Assert.Equal(FrameType.Ack, (await worker.ReceiveAsync()).Type);
        await _engine.QuiesceAsync();
        Assert.Null(await _engine.GetGroupStateAsync(0, "jobs.*", "workers"));
        var pub = await Publisher();
        Assert.Equal(FrameType.Ack, (await pub.PublishAsync(a, [1])).Type);

        // Published while no group existed: a new group starts empty.
        var next = await Member("next", 5);
        Assert.Empty(await Drain(next));
        Assert.Equal((1, 0, 0), await _engine.GetGroupStateAsync(0, "jobs.*", "workers"));
    }

    [Fact]
    public async Task After_max_deliveries_a_pattern_group_event_is_dead_lettered_with_its_topic()
    {
        var (_, b) = TwoShardTopics();
        var ops = new InProcessClient(_engine, "ops");
        await ops.HelloAsync();
        await ops.SubscribeAsync("$dlq.workers");
        var worker = await Member("w", 1);
        var pub = await Publisher();
        await pub.PublishAsync(b, "poison"u8.ToArray());
        for (int attempt = 0; attempt < 2; attempt++)
        {
            Assert.Single(await Drain(worker));
            Interlocked.Add(ref _nowMs, 30_001);
            await _engine.MaintainAsync();
        }

        var letter = await ops.ReceiveAsync();
        Assert.Equal("$dlq.workers", letter.Topic);
        Assert.Equal("poison", Encoding.UTF8.GetString(letter.Payload));
    }
}
