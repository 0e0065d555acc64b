using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

/// <summary>PublishAsync's automatic retry after BACKOFF / 503, and the client's handling of DRAIN.</summary>
public sealed class PublishRetryTests
{
    private static readonly ReconnectOptions Fast = new() { Enabled = true, InitialDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(50) };

    [Fact]
    public async Task Backoff_is_retried_with_the_same_generated_message_id_until_the_ack()
    {
        await using var server = FakeRelayServer.StartTcp();
        var ids = new List<string?>();
        int refusals = 2;
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Pub)
            {
                return false;
            }

            lock (ids)
            {
                ids.Add(frame.Has(FieldMask.MessageId) ? frame.Envelope.MessageIdString : null);
            }

            if (Interlocked.Decrement(ref refusals) >= 0)
            {
                await session.SendAsync(new Envelope(FrameType.Backoff).WithRequestId(frame.RequestId).WithRetryAfterMs(20)
                    .WithError(ErrorCode.None, "rate"));
                return true;
            }

            return false; // the fake ACKs it
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        var ack = await client.PublishAsync("busy", "x"u8.ToArray()).Within();

        Assert.Equal(1UL, ack.Seq);
        Assert.Equal(3, ids.Count);
        Assert.NotNull(ids[0]);
        Assert.StartsWith("~", ids[0]);
        Assert.All(ids, id => Assert.Equal(ids[0], id));
    }

    [Fact]
    public async Task The_application_message_id_is_kept_and_the_last_backoff_is_thrown_after_MaxAttempts()
    {
        await using var server = FakeRelayServer.StartTcp();
        var ids = new List<string?>();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Pub)
            {
                return false;
            }

            lock (ids)
            {
                ids.Add(frame.Envelope.MessageIdString);
            }

            await session.SendAsync(new Envelope(FrameType.Backoff).WithRequestId(frame.RequestId).WithRetryAfterMs(5).WithError(ErrorCode.None, "full"));
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions
        {
            PublishRetry = new PublishRetryOptions { MaxAttempts = 3, MaxDelay = TimeSpan.FromMilliseconds(20) },
        }).Within();

        var error = await Assert.ThrowsAsync<FastRelayBackoffException>(() => client.PublishAsync("busy", "x"u8.ToArray(), new PublishOptions { MessageId = "job-1" })).Within();

        Assert.Equal(TimeSpan.FromMilliseconds(5), error.RetryAfter);
        Assert.Equal(["job-1", "job-1", "job-1"], ids);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public void Retry_delay_starts_at_the_servers_retry_after_grows_with_jitter_and_is_capped()
    {
        var policy = new PublishRetryOptions { MaxDelay = TimeSpan.FromMilliseconds(500) };
        var after = TimeSpan.FromMilliseconds(50);
        Assert.Equal(after, policy.DelayBefore(1, after, 0.99)); // first retry: exactly what the server asked
        Assert.Equal(after, policy.DelayBefore(3, after, 0));    // jitter never goes below the server's delay
        Assert.Equal(TimeSpan.FromMilliseconds(50 + (0.5 * 150)), policy.DelayBefore(3, after, 0.5));
        Assert.Equal(TimeSpan.FromMilliseconds(500), policy.DelayBefore(20, after, 0.99));
    }

    [Fact]
    public async Task After_DRAIN_publishes_wait_for_the_reconnect_which_honours_the_drain_delay_and_a_503_is_retried_there()
    {
        await using var server = FakeRelayServer.StartTcp();
        int draining = 1;
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type == FrameType.Pub && Volatile.Read(ref draining) == 1)
            {
                await session.SendAsync(new Envelope(FrameType.Error).WithRequestId(frame.RequestId).WithError(ErrorCode.Unavailable, "server draining"));
                return true;
            }

            return false;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { ClientId = "p", Reconnect = Fast }).Within();
        var session = await server.NextSessionAsync();

        // A PUB already on its way when the server starts draining gets 503: the client keeps it for the next node.
        var inFlight = client.PublishAsync("t", new byte[] { 1 }, new PublishOptions { MessageId = "m-1" });
        var drained = new TaskCompletionSource<DrainNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Drained += (_, n) => drained.TrySetResult(n);
        await session.SendAsync(new Envelope(FrameType.Drain).WithRetryAfterMs(300).WithNode("node-b"));
        await drained.Task.Within();

        var queued = client.PublishAsync("t", new byte[] { 2 }, new PublishOptions { MessageId = "m-2" });
        await Assert.ThrowsAsync<FastRelayConnectionException>(() => client.PublishNoAckAsync("t", new byte[] { 3 }).AsTask()).Within();
        Assert.False(queued.IsCompleted);

        Volatile.Write(ref draining, 0);
        var closedAt = System.Diagnostics.Stopwatch.StartNew();
        session.Drop(); // the server closes after the drain
        var next = await server.NextSessionAsync();
        Assert.True(closedAt.Elapsed >= TimeSpan.FromMilliseconds(200), $"reconnected after {closedAt.Elapsed}: the DRAIN asked for 300 ms");
        Assert.Equal(client.Endpoint, server.Url); // "node-b" is not a URL: same endpoint

        var acks = await Task.WhenAll(inFlight, queued).Within();
        Assert.Equal([1UL, 2UL], acks.Select(a => a.Seq).Order());
        Assert.Equal(1, client.ReconnectCount);
        Assert.NotNull(next);
    }

    [Fact]
    public async Task The_drain_delay_counts_from_the_close_so_a_server_slow_to_close_still_spreads_its_clients()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { Reconnect = Fast }).Within();
        var waited = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ReconnectDelayForTest = (delay, _) =>
        {
            waited.TrySetResult(delay);
            return Task.CompletedTask;
        };
        var session = await server.NextSessionAsync();
        var drained = new TaskCompletionSource<DrainNotice>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Drained += (_, n) => drained.TrySetResult(n);
        await session.SendAsync(new Envelope(FrameType.Drain).WithRetryAfterMs(300));
        await drained.Task.Within();
        await client.PingAsync().Within(); // time passes between the DRAIN and the close (here a round trip)

        // Whenever the close comes, the first attempt waits the whole delay from then: counted from the DRAIN, a server
        // that took its drain window to flush would have every client's delay run out before it closed them all.
        session.Drop();
        Assert.Equal(TimeSpan.FromMilliseconds(300), await waited.Task.Within());
        await server.NextSessionAsync();
    }
}
