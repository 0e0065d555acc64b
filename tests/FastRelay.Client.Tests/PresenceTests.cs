using System.Buffers;
using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;
using MessagePack;

namespace FastRelay.Client.Tests;

public sealed class PresenceTests
{
    [Fact]
    public async Task GetPresenceAsync_sends_a_presence_query_and_decodes_the_member_list()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Presence)
            {
                return false;
            }

            var list = new ArrayBufferWriter<byte>();
            var writer = new MessagePackWriter(list);
            writer.WriteArrayHeader(2);
            writer.WriteArrayHeader(2);
            writer.Write("alice");
            writer.Write(new byte[] { 1, 2 });
            writer.WriteArrayHeader(2);
            writer.Write("bob");
            writer.WriteNil();
            writer.Flush();
            await session.SendAsync(new Envelope(FrameType.Presence).WithRequestId(frame.RequestId).WithTopic(frame.Topic!)
                .WithEpoch(1).WithSeq(0).WithPayload(list.WrittenMemory));
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        var members = await client.GetPresenceAsync("rooms.lobby").Within();

        Assert.Equal(["alice", "bob"], members.Select(m => m.ClientId));
        Assert.Equal([1, 2], members[0].Info);
        Assert.Null(members[1].Info);
        var query = await (await server.NextSessionAsync()).NextAsync(FrameType.Presence);
        Assert.Equal("rooms.lobby", query.Topic);
        Assert.NotEqual(0UL, query.RequestId);
    }

    [Fact]
    public async Task Presence_announcements_reach_the_topics_subscriptions_in_order_as_joins_and_leaves()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var lobby = await client.SubscribeAsync("rooms.lobby", new SubscribeOptions { PresenceInfo = "me"u8.ToArray() }).Within();
        var other = await client.SubscribeAsync("rooms.other").Within();

        Assert.Equal("me"u8.ToArray(), (await session.NextAsync(FrameType.Sub)).Envelope.Payload.ToArray());
        await session.SendAsync(new Envelope(FrameType.Presence).WithTopic("rooms.lobby").WithClientId("carol").WithFlags(EventFlags.Join).WithPayload("hi"u8.ToArray()));
        await session.SendAsync(new Envelope(FrameType.Presence).WithTopic("rooms.lobby").WithClientId("carol").WithFlags(EventFlags.Leave));

        var changes = new List<PresenceChange>();
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        await foreach (var change in lobby.ReadPresenceAsync(timeout.Token))
        {
            changes.Add(change);
            if (changes.Count == 2)
            {
                break;
            }
        }

        Assert.Equal(("rooms.lobby", "carol", PresenceChangeKind.Joined), (changes[0].Topic, changes[0].ClientId, changes[0].Kind));
        Assert.Equal("hi"u8.ToArray(), changes[0].Info);
        Assert.Equal((PresenceChangeKind.Left, (byte[]?)null), (changes[1].Kind, changes[1].Info));
        await other.UnsubscribeAsync().Within();
        Assert.Empty(await ToListAsync(other.ReadPresenceAsync()));
    }

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}
