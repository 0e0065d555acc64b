using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

/// <summary><see cref="PublishOptions.Key"/> goes out as field 21 and comes back on <see cref="RelayEvent.Key"/>.</summary>
public sealed class OrderingKeyTests
{
    [Fact]
    public async Task Publish_sends_the_key_and_subscribers_see_it_on_the_event()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        await using var subscription = await client.SubscribeAsync("orders").Within();

        await client.PublishAsync("orders", "a"u8.ToArray(), new PublishOptions { Key = "customer-ü" }).Within();
        await client.PublishAsync("orders", "b"u8.ToArray()).Within();

        var pub = await session.NextAsync(FrameType.Pub);
        Assert.Equal("customer-ü", pub.Envelope.KeyString);
        var keyless = await session.NextAsync(FrameType.Pub);
        Assert.False(keyless.Envelope.Has(FieldMask.Key));

        var events = new List<RelayEvent>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var e in subscription.ReadAllAsync(timeout.Token))
        {
            events.Add(e);
            if (events.Count == 2)
            {
                break;
            }
        }

        Assert.Equal("customer-ü", events[0].Key);
        Assert.Null(events[1].Key);
    }

    [Fact]
    public async Task A_key_over_256_utf8_bytes_is_refused_before_sending()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        var error = await Assert.ThrowsAsync<ArgumentException>(() =>
            client.PublishAsync("orders", "a"u8.ToArray(), new PublishOptions { Key = new string('é', 129) }));
        Assert.Equal("Key", error.ParamName);
        await client.PublishAsync("orders", "a"u8.ToArray(), new PublishOptions { Key = new string('k', 256) }).Within();
    }
}
