using System.Text;
using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;

namespace FastRelay.Integration.Tests;

/// <summary>Presence lists and join/leave announcements through the real server and the .NET client.</summary>
public sealed class PresenceTests
{
    private static void AnnounceRooms(Core.RelayOptions o) => o.Presence.Patterns = ["rooms.>"];

    [Fact]
    public async Task Joins_leaves_and_lists_follow_clients_that_subscribe_unsubscribe_and_crash()
    {
        await using var relay = TestRelay.Start(AnnounceRooms);
        await using var observer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "observer" });
        var changes = await observer.SubscribeAsync("rooms.lobby", new SubscribeOptions { PresenceInfo = "obs"u8.ToArray() });
        var raised = new TaskCompletionSource<PresenceChange>(TaskCreationOptions.RunContinuationsAsynchronously);
        changes.PresenceChanged += (_, change) =>
        {
            if (change.ClientId == "bob")
            {
                raised.TrySetResult(change); // the observer's own join may come before or after this handler
            }
        };
        await using var carol = await FastRelayClient.ConnectAsync(relay.WebSocketUri, new FastRelayClientOptions { ClientId = "carol" }); // lists, never joins
        await AssertChangeAsync(changes, "observer", PresenceChangeKind.Joined, "obs"); // the joiner hears its own join

        var bob = await FastRelayClient.ConnectAsync(relay.UnixUri, new FastRelayClientOptions { ClientId = "bob" });
        await bob.SubscribeAsync("rooms.lobby", new SubscribeOptions { PresenceInfo = "bob's info"u8.ToArray() });
        await AssertChangeAsync(changes, "bob", PresenceChangeKind.Joined, "bob's info");
        Assert.Equal(PresenceChangeKind.Joined, (await raised.Task.Within()).Kind); // the event, for handlers attached in time
        Assert.Equal([("bob", "bob's info"), ("observer", "obs")], await ListAsync(carol, "rooms.lobby"));

        bob.AbortConnectionForTest(); // a crash: no UNSUB, no close frame
        await AssertChangeAsync(changes, "bob", PresenceChangeKind.Left, "bob's info");
        Assert.Equal([("observer", "obs")], await ListAsync(carol, "rooms.lobby"));
        await bob.DisposeAsync();

        await using var dave = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "dave" });
        var daveSub = await dave.SubscribeAsync("rooms.lobby");
        await AssertChangeAsync(changes, "dave", PresenceChangeKind.Joined, null);
        await daveSub.UnsubscribeAsync();
        await AssertChangeAsync(changes, "dave", PresenceChangeKind.Left, null);
        Assert.Equal([("observer", "obs")], await ListAsync(observer, "rooms.lobby"));
    }

    [Fact]
    public async Task A_reconnecting_client_leaves_and_rejoins_with_the_same_id_and_presence_info()
    {
        await using var relay = TestRelay.Start(AnnounceRooms);
        await using var observer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "observer" });
        var changes = await observer.SubscribeAsync("rooms.hall");
        await AssertChangeAsync(changes, "observer", PresenceChangeKind.Joined, null);
        await using var erin = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "erin", Reconnect = ClientSignals.FastReconnect });
        await erin.SubscribeAsync("rooms.hall", new SubscribeOptions { PresenceInfo = "erin@desk"u8.ToArray() });
        await AssertChangeAsync(changes, "erin", PresenceChangeKind.Joined, "erin@desk");

        var gate = new ReconnectGate(erin);
        var reconnected = erin.NextReconnectAsync();
        erin.AbortConnectionForTest();
        await gate.Reached;
        await AssertChangeAsync(changes, "erin", PresenceChangeKind.Left, "erin@desk");
        gate.Release();
        await AssertChangeAsync(changes, "erin", PresenceChangeKind.Joined, "erin@desk"); // resubscribed with its info
        await reconnected;
        Assert.Equal([("erin", "erin@desk"), ("observer", null)], await ListAsync(observer, "rooms.hall"));
    }

    [Fact]
    public async Task Presence_lists_work_for_every_topic_with_the_info_each_subscriber_attached()
    {
        await using var relay = TestRelay.Start(AnnounceRooms);
        await using var a = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "a" });
        await using var b = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { ClientId = "b" });
        await a.SubscribeAsync("plain.topic", new SubscribeOptions { PresenceInfo = [1, 2, 3] });

        var members = await b.GetPresenceAsync("plain.topic").Within();
        Assert.Equal("a", Assert.Single(members).ClientId);
        Assert.Equal([1, 2, 3], members[0].Info);
        Assert.Empty(await b.GetPresenceAsync("nobody.here").Within());
        await b.SubscribeAsync("plain.topic");
        var both = await a.GetPresenceAsync("plain.topic").Within();
        Assert.Equal(["a", "b"], both.Select(m => m.ClientId).Order(StringComparer.Ordinal));
        Assert.Null(both.Single(m => m.ClientId == "b").Info);
    }

    private static async Task AssertChangeAsync(Subscription subscription, string clientId, PresenceChangeKind kind, string? info)
    {
        var change = await subscription.NextPresenceAsync();
        Assert.Equal((clientId, kind, info), (change.ClientId, change.Kind, change.Info is null ? null : Encoding.UTF8.GetString(change.Info)));
    }

    private static async Task<List<(string, string?)>> ListAsync(FastRelayClient client, string topic) =>
        [.. (await client.GetPresenceAsync(topic).Within())
            .Select(m => (m.ClientId, m.Info is null ? null : Encoding.UTF8.GetString(m.Info)))
            .OrderBy(m => m.ClientId, StringComparer.Ordinal)];
}
