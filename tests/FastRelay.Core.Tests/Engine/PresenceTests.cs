using System.Buffers;
using System.Text;
using FastRelay.Core.Engine;
using FastRelay.Protocol;
using MessagePack;

namespace FastRelay.Core.Tests.Engine;

public sealed class PresenceTests : IDisposable
{
    private readonly RelayEngine _engine = new(new RelayOptions { Shards = 2, Presence = new PresenceOptions { Patterns = ["rooms.>"] } });

    public void Dispose() => _engine.Dispose();

    private async Task<InProcessClient> Connected(string clientId)
    {
        var c = new InProcessClient(_engine);
        await c.HelloAsync(clientId: clientId);
        return c;
    }

    private static Task<Received> Join(InProcessClient c, string topic, string info)
    {
        c.Send(new Envelope(FrameType.Sub).WithRequestId(c.NextRequestId()).WithTopic(topic).WithPayload(Encoding.UTF8.GetBytes(info)));
        return c.ReceiveAsync();
    }

    private static async Task<List<(string ClientId, string? Info)>> ListAsync(InProcessClient c, string topic)
    {
        c.Send(new Envelope(FrameType.Presence).WithRequestId(c.NextRequestId()).WithTopic(topic));
        var reply = await c.ReceiveAsync();
        Assert.Equal(FrameType.Presence, reply.Type);
        var reader = new MessagePackReader(reply.Payload);
        int count = reader.ReadArrayHeader();
        var list = new List<(string, string?)>();
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(2, reader.ReadArrayHeader());
            string id = reader.ReadString()!;
            var info = reader.ReadBytes();
            list.Add((id, info is null ? null : Encoding.UTF8.GetString(info.Value.ToArray())));
        }

        return list.OrderBy(x => x.Item1).ToList();
    }

    [Fact]
    public async Task Join_leave_and_list_follow_subscribe_unsubscribe_and_a_dropped_connection()
    {
        var alice = await Connected("alice");
        var bob = await Connected("bob");
        var carol = await Connected("carol");

        Assert.Equal(FrameType.Ack, (await Join(alice, "rooms.lobby", "{\"name\":\"Alice\"}")).Type);
        var aliceSeesHerself = await alice.ReceiveAsync();
        Assert.Equal(FrameType.Presence, aliceSeesHerself.Type);
        Assert.True(aliceSeesHerself.Flags.HasFlag(EventFlags.Join));

        await Join(bob, "rooms.lobby", "{\"name\":\"Bob\"}");
        var bobJoined = await alice.ReceiveAsync();
        Assert.Equal(("bob", EventFlags.Join, "{\"name\":\"Bob\"}"), (bobJoined.ClientId, bobJoined.Flags, Encoding.UTF8.GetString(bobJoined.Payload)));
        Assert.Equal(FrameType.Presence, (await bob.ReceiveAsync()).Type); // bob's own join

        Assert.Equal([("alice", "{\"name\":\"Alice\"}"), ("bob", "{\"name\":\"Bob\"}")], await ListAsync(carol, "rooms.lobby"));

        // Bob's socket drops without UNSUB: the others learn he left, and the list shrinks.
        bob.Session.OnTransportClosed();
        var left = await alice.ReceiveAsync();
        Assert.Equal(FrameType.Presence, left.Type);
        Assert.Equal("bob", left.ClientId);
        Assert.True(left.Flags.HasFlag(EventFlags.Leave));
        Assert.Equal([("alice", "{\"name\":\"Alice\"}")], await ListAsync(carol, "rooms.lobby"));

        alice.Send(new Envelope(FrameType.Unsub).WithRequestId(99).WithTopic("rooms.lobby"));
        Assert.Equal(FrameType.Ack, (await alice.ReceiveAsync()).Type);
        Assert.Empty(await ListAsync(carol, "rooms.lobby"));
    }

    [Fact]
    public async Task A_client_id_on_two_connections_joins_once_and_leaves_with_its_last_connection()
    {
        var observer = await Connected("observer");
        await Join(observer, "rooms.hall", "obs");
        Assert.True((await observer.ReceiveAsync()).Flags.HasFlag(EventFlags.Join)); // its own join

        // erin's connection drops and she reconnects; the new SUB reaches the shard before the old teardown.
        var erinOld = await Connected("erin");
        await Join(erinOld, "rooms.hall", "erin@desk");
        var joined = await observer.ReceiveAsync();
        Assert.Equal(("erin", EventFlags.Join), (joined.ClientId, joined.Flags));
        var erinNew = await Connected("erin");
        Assert.Equal(FrameType.Ack, (await Join(erinNew, "rooms.hall", "erin@desk")).Type);
        erinOld.Session.OnTransportClosed();

        // Same id, same info: no second join, and the old connection's teardown is no leave (checked below: the
        // observer's next frames are one leave and then the next event). The last connection leaves: exactly one leave, and the next frame is the topic's next event.
        erinNew.Send(new Envelope(FrameType.Unsub).WithRequestId(7).WithTopic("rooms.hall"));
        Assert.Equal(FrameType.Ack, (await erinNew.ReceiveAsync()).Type);
        var left = await observer.ReceiveAsync();
        Assert.Equal(FrameType.Presence, left.Type);
        Assert.Equal(("erin", EventFlags.Leave), (left.ClientId, left.Flags));
        var publisher = await Connected("publisher");
        await publisher.PublishAsync("rooms.hall", [42]);
        var next = await observer.ReceiveAsync();
        Assert.Equal(FrameType.Event, next.Type);
        Assert.Equal([42], next.Payload);
        Assert.Equal([("observer", "obs")], await ListAsync(publisher, "rooms.hall"));
    }

    [Fact]
    public async Task A_client_id_back_with_different_info_is_announced_again()
    {
        var observer = await Connected("observer");
        await Join(observer, "rooms.desk", "obs");
        await observer.ReceiveAsync(); // its own join
        var first = await Connected("frank");
        await Join(first, "rooms.desk", "frank@laptop");
        Assert.Equal("frank@laptop", Encoding.UTF8.GetString((await observer.ReceiveAsync()).Payload));

        var second = await Connected("frank");
        await Join(second, "rooms.desk", "frank@phone");
        var again = await observer.ReceiveAsync();
        Assert.Equal(("frank", EventFlags.Join, "frank@phone"), (again.ClientId, again.Flags, Encoding.UTF8.GetString(again.Payload)));

        // The phone leaves, the laptop stays: no leave, and the info observers hold is the laptop's again.
        second.Send(new Envelope(FrameType.Unsub).WithRequestId(9).WithTopic("rooms.desk"));
        Received reply;
        do
        {
            reply = await second.ReceiveAsync(); // after the presence it saw while subscribed
        }
        while (reply.Type == FrameType.Presence);

        Assert.Equal(FrameType.Ack, reply.Type);
        var back = await observer.ReceiveAsync();
        Assert.Equal(("frank", EventFlags.Join, "frank@laptop"), (back.ClientId, back.Flags, Encoding.UTF8.GetString(back.Payload)));
    }

    [Fact]
    public async Task Topics_outside_the_presence_patterns_list_members_but_announce_nothing()
    {
        var a = await Connected("a");
        await Join(a, "chat.quiet", "x");
        var b = await Connected("b");
        await Join(b, "chat.quiet", "y");

        // No PRESENCE frame was queued for a: its next frame is the reply to its own query.
        Assert.Equal([("a", "x"), ("b", "y")], await ListAsync(a, "chat.quiet"));
    }

    [Fact]
    public async Task Lifecycle_events_on_the_system_topic_report_connects_and_disconnects_with_a_reason()
    {
        var ops = await Connected("operator");
        await ops.SubscribeAsync(SystemTopics.Connections);
        var worker = await Connected("worker-1");

        // The operator's own "connected" event may be sequenced after its SUB too; skip it.
        Received connected;
        Dictionary<string, string> map;
        do
        {
            connected = await ops.ReceiveAsync();
            Assert.Equal(SystemTopics.Connections, connected.Topic);
            Assert.Equal("$server", connected.ClientId);
            map = ReadMap(connected.Payload);
        }
        while (map["client_id"] == "operator");

        Assert.Equal("connected", map["event"]);
        Assert.Equal("worker-1", map["client_id"]);
        Assert.Equal("test", map["transport"]);

        worker.Session.OnTransportClosed();
        var disconnected = ReadMap((await ops.ReceiveAsync()).Payload);
        Assert.Equal("disconnected", disconnected["event"]);
        Assert.Equal("worker-1", disconnected["client_id"]);
        Assert.False(string.IsNullOrEmpty(disconnected["reason"]));
    }

    [Fact]
    public async Task Node_statistics_are_published_on_the_stats_system_topic()
    {
        var ops = await Connected("operator");
        await ops.SubscribeAsync(SystemTopics.Stats);
        var pub = await Connected("writer");
        for (int i = 0; i < 5; i++)
        {
            await pub.PublishAsync("work", [1]);
        }

        _engine.PublishStats(uptimeMs: 1234);
        var stats = await ops.ReceiveAsync();
        Assert.Equal(SystemTopics.Stats, stats.Topic);
        var map = ReadMap(stats.Payload);
        Assert.Equal("1234", map["uptime_ms"]);
        Assert.True(long.Parse(map["published"]) >= 5);
        Assert.Equal("2", map["sessions"]);
        Assert.True(long.Parse(map["gc_allocated_bytes"]) > 0);
    }

    [Fact]
    public async Task Clients_cannot_publish_to_system_topics()
    {
        var c = await Connected("mallory");
        var error = await c.PublishAsync(SystemTopics.Connections, [1]);
        Assert.Equal(FrameType.Error, error.Type);
        Assert.Equal(ErrorCode.Forbidden, error.ErrorCode);
        Assert.Contains("reserved", error.Reason);
    }

    [Fact]
    public async Task Oversized_presence_info_is_refused()
    {
        var c = await Connected("big");
        c.Send(new Envelope(FrameType.Sub).WithRequestId(3).WithTopic("rooms.big").WithPayload(new byte[2048]));
        var error = await c.ReceiveAsync();
        Assert.Equal(ErrorCode.TooLarge, error.ErrorCode);
    }

    private static Dictionary<string, string> ReadMap(byte[] payload)
    {
        var reader = new MessagePackReader(payload);
        int n = reader.ReadMapHeader();
        var map = new Dictionary<string, string>();
        for (int i = 0; i < n; i++)
        {
            string key = reader.ReadString()!;
            map[key] = reader.NextMessagePackType == MessagePackType.Integer ? reader.ReadInt64().ToString() : reader.ReadString()!;
        }

        return map;
    }
}
