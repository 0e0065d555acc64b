using System.Text;
using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;
using static FastRelay.Client.Tests.ReconnectTests;

namespace FastRelay.Client.Tests;

public sealed class PatternSubscriptionTests
{
    [Theory]
    [InlineData("a.*.c", "a.b.c", true)]
    [InlineData("a.*.c", "a.bb.c", true)]
    [InlineData("a.*.c", "a.b.c.d", false)]
    [InlineData("a.*.c", "a.c", false)]
    [InlineData("a.*", "a", false)]
    [InlineData("*", "a", true)]
    [InlineData("*", "a.b", false)]
    [InlineData("a.>", "a.b", true)]
    [InlineData("a.>", "a.b.c", true)]
    [InlineData("a.>", "a", false)]
    [InlineData("a.>", "ab.c", false)]
    [InlineData(">", "a.b.c", true)]
    [InlineData("*.b.>", "x.b.y.z", true)]
    [InlineData("*.b.>", "x.c.y", false)]
    [InlineData("a.b", "a.b", true)]
    [InlineData("a.b", "a.bc", false)]
    [InlineData("агенты.*", "агенты.один", true)]
    public void Patterns_match_like_the_server(string pattern, string topic, bool matches)
    {
        Assert.Equal(matches, new TopicPattern(pattern).Matches(Encoding.UTF8.GetBytes(topic)));
    }

    [Fact]
    public async Task An_event_reaches_each_matching_pattern_and_the_topic_subscription_once()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var single = await client.SubscribeAsync("a.*").Within();
        var tail = await client.SubscribeAsync("a.>").Within();
        var exact = await client.SubscribeAsync("a.b").Within();

        await session.SendEventAsync("a.b", 1, [1], epoch: server.Epoch); // the server sends it once per connection
        await session.SendEventAsync("a.b.c", 1, [2], epoch: server.Epoch);
        await session.SendEventAsync("b.x", 1, [3], epoch: server.Epoch);
        await session.SendEventAsync("a.b", 2, [4], epoch: server.Epoch);

        Assert.Equal([("a.b", 1UL), ("a.b", 2UL)], (await TakeAsync(single, 2)).Select(e => (e.Topic, e.Seq)));
        Assert.Equal([("a.b", 1UL), ("a.b.c", 1UL), ("a.b", 2UL)], (await TakeAsync(tail, 3)).Select(e => (e.Topic, e.Seq)));
        Assert.Equal([1UL, 2], (await TakeAsync(exact, 2)).Select(e => e.Seq));
        Assert.True(single.IsPattern);
        Assert.False(exact.IsPattern);
    }

    [Fact]
    public async Task Subscriptions_to_one_pattern_share_one_SUB_and_the_last_one_out_sends_the_UNSUB()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        var both = await Task.WhenAll(client.SubscribeAsync("x.>"), client.SubscribeAsync("x.>")).Within();
        await session.SendEventAsync("x.y", 1, [1]);
        Assert.Single(await TakeAsync(both[0], 1));
        Assert.Single(await TakeAsync(both[1], 1));
        await both[0].UnsubscribeAsync().Within();
        await both[1].UnsubscribeAsync().Within();

        var frames = await session.UntilAsync(FrameType.Unsub);
        Assert.Single(frames, f => f.Type == FrameType.Sub);
        Assert.Equal("x.>", frames[^1].Topic);
        await client.PingAsync().Within();
        Assert.DoesNotContain((await session.UntilAsync(FrameType.Ping)).Select(f => f.Type), t => t == FrameType.Unsub);
    }

    [Fact]
    public async Task A_pattern_takes_neither_presence_info_nor_a_resume_position()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("a.*", new SubscribeOptions { PresenceInfo = [1] }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("a.>", new SubscribeOptions { ResumeFrom = new StreamPosition(1, 1) }));
    }
}
