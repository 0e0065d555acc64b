using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>Per-key order in consumer groups: events of one key go out one at a time, in publish order.</summary>
public sealed class KeyedConsumerGroupTests() : GroupTestBase(shards: 2, pendingCapacity: 20)
{
    private Task<InProcessClient> Member(string id, uint credits, string topic = "jobs") => JoinAsync(id, credits, topic);

    private static void Ack(InProcessClient c, Received e) =>
        c.Send(new Envelope(FrameType.GroupAck).WithTopic(e.Topic!).WithGroup("workers").WithSeq(e.Seq));

    private static async Task<Received> Publish(InProcessClient p, string? key, string payload, string topic = "jobs")
    {
        var pub = new Envelope(FrameType.Pub).WithRequestId(p.NextRequestId()).WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(payload));
        if (key is not null)
        {
            pub = pub.WithKey(key);
        }

        p.Send(pub);
        return await p.ReceiveAsync();
    }

    private static string Text(Received e) => Encoding.UTF8.GetString(e.Payload);

    [Fact]
    public async Task Events_of_one_key_go_out_one_at_a_time_in_publish_order_across_members_whatever_the_ack_order()
    {
        var members = new[] { await Member("w1", 10), await Member("w2", 10), await Member("w3", 10) };
        var pub = await Publisher();
        string[] keys = ["a", "b", "c"];
        const int perKey = 6;
        for (int i = 0; i < perKey; i++)
        {
            foreach (string key in keys)
            {
                await Publish(pub, key, $"{key}-{i}");
            }

            await Publish(pub, null, $"free-{i}");
        }

        var random = new Random(1234);
        var processed = keys.ToDictionary(k => k, _ => new List<string>());
        var outstanding = new List<(InProcessClient Member, Received Event)>();
        int keyless = 0;
        for (int round = 0; round < 100 && processed.Values.Sum(l => l.Count) < keys.Length * perKey; round++)
        {
            foreach (var m in members)
            {
                foreach (var e in await Drain(m))
                {
                    if (e.Key is null)
                    {
                        keyless++;
                        Ack(m, e);
                        continue;
                    }

                    Assert.DoesNotContain(outstanding, o => o.Event.Key == e.Key); // never two of one key in flight
                    processed[e.Key].Add(Text(e));
                    outstanding.Add((m, e));
                }
            }

            if (round == 0)
            {
                // First round: each key's first event and every keyless event went out at once, in parallel.
                Assert.Equal(keys.Length, outstanding.Count);
                Assert.Equal(perKey, keyless);
            }

            // Acknowledge a random part of what is held, in random order.
            var toAck = outstanding.OrderBy(_ => random.Next()).Take(random.Next(1, outstanding.Count + 1)).ToList();
            foreach (var (m, e) in toAck)
            {
                Ack(m, e);
                outstanding.Remove((m, e));
            }
        }

        foreach (string key in keys)
        {
            Assert.Equal(Enumerable.Range(0, perKey).Select(i => $"{key}-{i}"), processed[key]);
        }

        Assert.Equal((3, 0), await PendingAndMembers());
    }

    private async Task<(int Members, int Pending)> PendingAndMembers()
    {
        var state = await _engine.GetGroupStateAsync(0, "jobs", "workers");
        return (state!.Value.Members, state.Value.Pending);
    }

    [Fact]
    public async Task Different_keys_go_out_in_parallel_up_to_the_credits()
    {
        var m = await Member("m", 3);
        var pub = await Publisher();
        for (int k = 1; k <= 5; k++)
        {
            await Publish(pub, $"k{k}", $"k{k}");
        }

        var first = await Drain(m);
        Assert.Equal(["k1", "k2", "k3"], first.Select(Text));
        Assert.Equal((1, 2), await PendingAndMembers());

        Ack(m, first[1]);
        Assert.Equal(["k4"], (await Drain(m)).Select(Text));
    }

    [Fact]
    public async Task A_busy_key_does_not_hold_back_keyless_events_or_other_keys()
    {
        var m = await Member("m", 10);
        var pub = await Publisher();
        await Publish(pub, "a", "a-0");
        await Publish(pub, "a", "a-1");
        await Publish(pub, null, "x-0");
        await Publish(pub, "b", "b-0");
        await Publish(pub, null, "x-1");

        Assert.Equal(["a-0", "x-0", "b-0", "x-1"], (await Drain(m)).Select(Text));
        Assert.Equal((1, 1), await PendingAndMembers()); // a-1 waits behind a-0
    }

    [Fact]
    public async Task A_redelivery_after_lease_expiry_keeps_the_key_blocked_until_it_is_acknowledged()
    {
        var a = await Member("a", 5);
        var pub = await Publisher();
        await Publish(pub, "k", "k-0");
        await Publish(pub, "k", "k-1");
        Assert.Equal(["k-0"], (await Drain(a)).Select(Text));
        var b = await Member("b", 5);

        Interlocked.Add(ref _nowMs, 30_001); // a's lease runs out: k-0 goes to b, k-1 still waits
        await _engine.MaintainAsync();
        var redelivered = await Drain(b);
        Assert.Equal(["k-0"], redelivered.Select(Text));
        Assert.Empty(await Drain(a));
        Assert.Equal((2, 1), await PendingAndMembers());

        // a's late ACK does not release the key: k-0 is b's now.
        a.Send(new Envelope(FrameType.GroupAck).WithRequestId(9).WithTopic("jobs").WithGroup("workers").WithSeq(1));
        Assert.Equal(ErrorCode.NotFound, (await a.ReceiveAsync()).ErrorCode);
        Assert.Empty(await Drain(a));
        Assert.Empty(await Drain(b));

        Ack(b, redelivered[0]);
        var next = (await Drain(a)).Concat(await Drain(b)).ToList();
        Assert.Equal(["k-1"], next.Select(Text));
    }

    [Fact]
    public async Task A_member_that_leaves_hands_the_key_back_and_order_holds()
    {
        var doomed = await Member("doomed", 5);
        var survivor = await Member("survivor", 5);
        var pub = await Publisher();
        await Publish(pub, "k", "k-0"); // rotation: the first event goes to the member after the cursor
        var firstDoomed = await Drain(doomed);
        var firstSurvivor = await Drain(survivor);
        var holder = firstDoomed.Count == 1 ? doomed : survivor;
        var other = ReferenceEquals(holder, doomed) ? survivor : doomed;
        Assert.Single(firstDoomed.Concat(firstSurvivor));

        await Publish(pub, "k", "k-1");
        await Publish(pub, "k", "k-2");
        Assert.Empty(await Drain(holder));
        Assert.Empty(await Drain(other));

        holder.Session.OnTransportClosed();
        var handedBack = await Drain(other);
        Assert.Equal(["k-0"], handedBack.Select(Text));

        Ack(other, handedBack[0]);
        var second = await Drain(other);
        Assert.Equal(["k-1"], second.Select(Text));
        Ack(other, second[0]);
        Assert.Equal(["k-2"], (await Drain(other)).Select(Text));
    }

    [Fact]
    public async Task Dead_lettering_a_keyed_event_releases_the_next_one_of_its_key()
    {
        var ops = new InProcessClient(_engine, "ops");
        await ops.HelloAsync();
        await ops.SubscribeAsync("$dlq.workers");
        var a = await Member("a", 5);
        var pub = await Publisher();
        await Publish(pub, "k", "poison");
        await Publish(pub, "k", "k-1");
        for (int attempt = 0; attempt < 2; attempt++)
        {
            Assert.Equal(["poison"], (await Drain(a)).Select(Text)); // delivered, never acknowledged; k-1 waits
            Interlocked.Add(ref _nowMs, 30_001);
            await _engine.MaintainAsync();
        }

        var letter = await ops.ReceiveAsync();
        Assert.Equal("$dlq.workers", letter.Topic);
        Assert.Equal("poison", Text(letter));
        Assert.Equal("k", letter.Key); // the dead letter keeps its key
        Assert.Equal(["k-1"], (await Drain(a)).Select(Text));
    }

    [Fact]
    public async Task Keyed_events_waiting_behind_their_key_count_toward_the_pending_capacity()
    {
        await Member("roomy", 100); // plenty of credit: only the key holds the events back
        var pub = await Publisher();
        for (int i = 0; i < 21; i++)
        {
            Assert.Equal(FrameType.Ack, (await Publish(pub, "k", $"k-{i}")).Type); // 1 in flight, 20 waiting
        }

        Assert.Equal((1, 20), await PendingAndMembers());
        var refused = await Publish(pub, "k", "k-21");
        Assert.Equal(FrameType.Backoff, refused.Type);
        Assert.Contains("consumer group", refused.Reason);
        Assert.Equal(FrameType.Backoff, (await Publish(pub, "other-key", "o")).Type);
        Assert.Equal(FrameType.Ack, (await Publish(pub, "k", "elsewhere", topic: "other.topic")).Type);
    }

    [Fact]
    public async Task A_pattern_group_orders_one_key_across_topics()
    {
        var w = await Member("w", 10, topic: "jobs.*");
        var pub = await Publisher();
        await Publish(pub, "k", "a-0", topic: "jobs.a");
        await Publish(pub, "k", "b-0", topic: "jobs.b");
        await Publish(pub, "j", "b-1", topic: "jobs.b");

        var first = await Drain(w);
        Assert.Equal(["a-0", "b-1"], first.Select(Text)); // same key on two topics is one key
        var state = await _engine.GetGroupStateAsync(0, "jobs.*", "workers");
        Assert.Equal(1, state!.Value.Pending);

        Ack(w, first[0]);
        Assert.Equal(["b-0"], (await Drain(w)).Select(Text));
    }

    [Fact]
    public async Task An_invalid_key_is_refused_with_error_400_naming_the_field()
    {
        var pub = await Publisher();
        pub.Send(new Envelope(FrameType.Pub).WithRequestId(5).WithTopic("jobs").WithKey(new byte[] { 0xff, 0xfe }).WithPayload(new byte[] { 1 }));
        var error = await pub.ReceiveAsync();
        Assert.Equal(ErrorCode.BadFrame, error.ErrorCode);
        Assert.Contains("field 21 (key)", error.Reason);

        pub.Send(new Envelope(FrameType.Pub).WithRequestId(6).WithTopic("jobs").WithKey(ReadOnlyMemory<byte>.Empty).WithPayload(new byte[] { 1 }));
        Assert.Equal(ErrorCode.BadFrame, (await pub.ReceiveAsync()).ErrorCode);

        // The connection stays open: a valid keyed publish is accepted.
        Assert.Equal(FrameType.Ack, (await Publish(pub, "ü-key", "ok")).Type);
    }

    [Fact]
    public async Task A_key_over_256_bytes_is_refused_with_error_400_naming_the_field()
    {
        var pub = await Publisher();
        pub.Send(new Envelope(FrameType.Pub).WithRequestId(5).WithTopic("jobs").WithKey(new string('k', 257)).WithPayload(new byte[] { 1 }));
        var error = await pub.ReceiveAsync();
        Assert.Equal(ErrorCode.BadFrame, error.ErrorCode);
        Assert.Contains("Key", error.Reason);
    }
}
