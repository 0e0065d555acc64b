using FastRelay.Client.Tests.Fakes;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests;

public sealed class PublishTests
{
    [Fact]
    public async Task Publish_returns_the_ack_topic_epoch_and_seq()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Epoch = 42;
        server.SetLastSeq("orders", 99);
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        var first = await client.PublishAsync("orders", "a"u8.ToArray()).Within();
        var second = await client.PublishAsync("orders", "b"u8.ToArray()).Within();

        Assert.Equal(new PublishAck("orders", 42, 100, IsDuplicate: false), first);
        Assert.Equal(new PublishAck("orders", 42, 101, IsDuplicate: false), second);
    }

    [Fact]
    public async Task Publish_sends_request_id_topic_metadata_flags_and_payload()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();

        await client.PublishAsync("chat", "hello"u8.ToArray(),
            new PublishOptions { MessageId = "m-1", PrevEventId = "m-0", Flags = EventFlags.Partial | EventFlags.Droppable }).Within();

        var pub = await session.NextAsync(FrameType.Pub);
        Assert.Equal(2UL, pub.RequestId); // 1 was the HELLO
        Assert.Equal("chat", pub.Topic);
        Assert.Equal("m-1", pub.Envelope.MessageIdString);
        Assert.Equal("m-0", pub.Envelope.PrevEventIdString);
        Assert.Equal(EventFlags.Partial | EventFlags.Droppable, pub.Envelope.Flags);
        Assert.Equal("hello"u8.ToArray(), pub.Envelope.Payload.ToArray());
    }

    [Fact]
    public async Task Publishing_the_same_message_id_twice_reports_a_duplicate_with_the_original_seq()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { ClientId = "p" }).Within();

        var original = await client.PublishAsync("t", "x"u8.ToArray(), new PublishOptions { MessageId = "id-1" }).Within();
        var again = await client.PublishAsync("t", "x"u8.ToArray(), new PublishOptions { MessageId = "id-1" }).Within();

        Assert.False(original.IsDuplicate);
        Assert.True(again.IsDuplicate);
        Assert.Equal(original.Seq, again.Seq);
    }

    [Fact]
    public async Task Publish_error_throws_FastRelayException_with_code_and_reason()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Pub || frame.Topic != "admin")
            {
                return false;
            }

            await session.SendAsync(new Envelope(FrameType.Error).WithRequestId(frame.RequestId)
                .WithError(ErrorCode.Forbidden, "topic 'admin' is not allowed"));
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();

        var error = await Assert.ThrowsAsync<FastRelayException>(() => client.PublishAsync("admin", "x"u8.ToArray())).Within();

        Assert.Equal(ErrorCode.Forbidden, error.ErrorCode);
        Assert.Equal("topic 'admin' is not allowed", error.Reason);
        Assert.True(client.IsConnected); // a refused request fails alone
        Assert.Equal(1UL, (await client.PublishAsync("other", default).Within()).Seq);
    }

    [Fact]
    public async Task Publish_backoff_throws_FastRelayBackoffException_with_retry_after()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Pub)
            {
                return false;
            }

            await session.SendAsync(new Envelope(FrameType.Backoff).WithRequestId(frame.RequestId).WithRetryAfterMs(1500)
                .WithError(ErrorCode.None, "shard inbox full"));
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { PublishRetry = new PublishRetryOptions { MaxAttempts = 1 } }).Within();

        var error = await Assert.ThrowsAsync<FastRelayBackoffException>(() => client.PublishAsync("busy", "x"u8.ToArray())).Within();

        Assert.Equal(TimeSpan.FromMilliseconds(1500), error.RetryAfter);
        Assert.Equal("shard inbox full", error.Reason);
        Assert.Equal(ErrorCode.LimitExceeded, error.ErrorCode);
    }

    [Fact]
    public async Task PublishNoAck_sends_no_request_id_and_reports_a_later_error_through_ServerError()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = async (session, frame) =>
        {
            if (frame.Type != FrameType.Pub)
            {
                return false;
            }

            await session.SendAsync(new Envelope(FrameType.Error).WithError(ErrorCode.TooLarge, "payload over the tenant limit"));
            return true;
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        var session = await server.NextSessionAsync();
        var serverError = new TaskCompletionSource<FastRelayException>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ServerError += (_, error) => serverError.TrySetResult(error);

        await client.PublishNoAckAsync("fire", "x"u8.ToArray());

        var pub = await session.NextAsync(FrameType.Pub);
        Assert.False(pub.Has(FieldMask.RequestId));
        var reported = await serverError.Task.Within();
        Assert.Equal(ErrorCode.TooLarge, reported.ErrorCode);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task Publish_rejects_bad_arguments_before_sending()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { MaxMessageBytes = 1024 }).Within();

        Assert.Throws<ArgumentNullException>(() => { _ = client.PublishAsync(null!, default); });
        Assert.Throws<ArgumentException>(() => { _ = client.PublishAsync("", default); });
        Assert.Throws<ArgumentException>(() => { _ = client.PublishAsync(new string('t', ProtocolLimits.MaxTopicBytes + 1), default); });
        Assert.Throws<ArgumentException>(() => { _ = client.PublishAsync(new string('é', ProtocolLimits.MaxTopicBytes / 2 + 1), default); }); // 2 bytes each
        var tooLarge = Assert.Throws<ArgumentException>(() => { _ = client.PublishAsync("t", new byte[1025]); });
        Assert.Contains("MaxMessageBytes", tooLarge.Message);
        Assert.Throws<ArgumentException>(() => { _ = client.PublishAsync("t", new byte[1020]); }); // fits alone, not with the envelope around it
        Assert.Throws<ArgumentException>(() => { _ = client.PublishNoAckAsync("t", default, new PublishOptions { MessageId = new string('m', 200) }); });

        // None of them reached the server, and the connection still works.
        Assert.Equal(1UL, (await client.PublishAsync("t", new byte[900]).Within()).Seq);
    }

    [Fact]
    public async Task Publish_without_a_reply_times_out_after_RequestTimeout()
    {
        await using var server = FakeRelayServer.StartTcp();
        server.Intercept = (_, frame) => Task.FromResult(frame.Type == FrameType.Pub);
        await using var client = await FastRelayClient.ConnectAsync(server.Url,
            new FastRelayClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(200) }).Within();

        var error = await Assert.ThrowsAsync<TimeoutException>(() => client.PublishAsync("silent", "x"u8.ToArray())).Within();

        Assert.Contains("PUB to 'silent'", error.Message);
        Assert.True(client.IsConnected);
        Assert.True(await client.PingAsync().Within() >= TimeSpan.Zero); // a timeout does not poison the connection
    }

    [Fact]
    public async Task Cancelling_a_publish_stops_the_wait_with_OperationCanceledException()
    {
        await using var server = FakeRelayServer.StartTcp();
        var pubSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Intercept = (_, frame) =>
        {
            if (frame.Type == FrameType.Pub)
            {
                pubSeen.TrySetResult();
                return Task.FromResult(true);
            }

            return Task.FromResult(false);
        };
        await using var client = await FastRelayClient.ConnectAsync(server.Url).Within();
        using var cts = new CancellationTokenSource();

        var publish = client.PublishAsync("t", "x"u8.ToArray(), ct: cts.Token);
        await pubSeen.Task.Within();
        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => publish).Within();
    }

    [Fact]
    public async Task Many_concurrent_publishes_each_get_their_own_ack()
    {
        await using var server = FakeRelayServer.StartTcp();
        await using var client = await FastRelayClient.ConnectAsync(server.Url, new FastRelayClientOptions { SendQueueCapacity = 8 }).Within();

        var acks = await Task.WhenAll(Enumerable.Range(0, 500).Select(i => client.PublishAsync("bulk", BitConverter.GetBytes(i)))).Within();

        Assert.Equal(Enumerable.Range(1, 500).Select(i => (ulong)i), acks.Select(a => a.Seq).Order());
    }
}
