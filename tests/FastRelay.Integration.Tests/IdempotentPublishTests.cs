using FastRelay.Client;
using FastRelay.Integration.Tests.Infrastructure;

namespace FastRelay.Integration.Tests;

/// <summary>Idempotent publish (protocol 4.4) through the .NET client.</summary>
public sealed class IdempotentPublishTests
{
    [Theory]
    [InlineData("tcp")]
    [InlineData("ws")]
    public async Task The_same_message_id_twice_is_acknowledged_with_the_first_seq_as_a_duplicate_and_delivered_once(string transport)
    {
        await using var relay = TestRelay.Start();
        await using var reader = await FastRelayClient.ConnectAsync(relay.UriFor(transport));
        await using var writer = await FastRelayClient.ConnectAsync(relay.UriFor(transport), new FastRelayClientOptions { ClientId = "billing" });
        var subscription = await reader.SubscribeAsync("invoices");

        var first = await writer.PublishAsync("invoices", "first"u8.ToArray(), new PublishOptions { MessageId = "invoice-17" });
        var second = await writer.PublishAsync("invoices", "second"u8.ToArray(), new PublishOptions { MessageId = "invoice-17" });
        var other = await writer.PublishAsync("invoices", "other"u8.ToArray(), new PublishOptions { MessageId = "invoice-18" });

        Assert.False(first.IsDuplicate);
        Assert.True(second.IsDuplicate);
        Assert.Equal(first.Seq, second.Seq);
        Assert.Equal(first.Epoch, second.Epoch);
        Assert.Equal(first.Seq + 1, other.Seq);
        var events = await subscription.TakeAsync(2);
        Assert.Equal([("invoice-17", "first"), ("invoice-18", "other")],
            events.Select(e => (e.MessageId, System.Text.Encoding.UTF8.GetString(e.Payload.Span))));
    }

    [Fact]
    public async Task A_message_id_repeated_after_a_reconnect_is_still_a_duplicate_because_the_client_keeps_its_assigned_id()
    {
        await using var relay = TestRelay.Start();
        await using var writer = await FastRelayClient.ConnectAsync(relay.TcpUri, new FastRelayClientOptions { Reconnect = ClientSignals.FastReconnect });
        string assigned = writer.ClientId;
        var first = await writer.PublishAsync("ledger", new byte[] { 1 }, new PublishOptions { MessageId = "entry-1" });

        var reconnected = writer.NextReconnectAsync();
        writer.AbortConnectionForTest();
        await reconnected;
        var again = await writer.PublishAsync("ledger", new byte[] { 1 }, new PublishOptions { MessageId = "entry-1" });

        Assert.Equal(assigned, writer.ClientId);
        Assert.True(again.IsDuplicate);
        Assert.Equal(first.Seq, again.Seq);
    }
}
