using System.Buffers.Text;
using System.Security.Cryptography;
using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>"~" + 16 hex digits (random per client instance) + "." + up to 20 decimal digits.</summary>
    private const int AutoIdMaxBytes = 1 + 16 + 1 + 20;

    /// <summary>
    /// The prefix of generated message ids: random per client instance, so two processes that share a client id never
    /// collide inside the dedup window (a collision would be ACKed as a duplicate and not delivered).
    /// </summary>
    private readonly byte[] _autoIdPrefix = CreateAutoIdPrefix();
    private long _lastAutoId;

    private static byte[] CreateAutoIdPrefix()
    {
        Span<byte> random = stackalloc byte[8];
        RandomNumberGenerator.Fill(random);
        return System.Text.Encoding.ASCII.GetBytes("~" + Convert.ToHexStringLower(random) + ".");
    }

    private ReadOnlyMemory<byte> WriteAutoId(byte[] scratch, ref int used, ulong autoId)
    {
        int start = used;
        _autoIdPrefix.CopyTo(scratch, used);
        used += _autoIdPrefix.Length;
        Utf8Formatter.TryFormat(autoId, scratch.AsSpan(used), out int written);
        used += written;
        return new ReadOnlyMemory<byte>(scratch, start, used - start);
    }

    /// <summary>
    /// PublishAsync with retries on. Fast path (connected, not draining, a send slot free): one PUB whose request keeps
    /// its frame, so a BACKOFF hands the same bytes to <see cref="RetryPublishAsync"/>; nothing else is allocated. While
    /// a drain is under way the publish waits for the reconnect instead of going to the node that is leaving.
    /// </summary>
    private Task<PublishAck> PublishWithRetry(string topic, ReadOnlyMemory<byte> payload, PublishOptions options, CancellationToken ct)
    {
        ulong autoId = string.IsNullOrEmpty(options.MessageId) ? (ulong)Interlocked.Increment(ref _lastAutoId) : 0;
        var connection = Usable();
        if (connection is not null && !IsDraining(connection))
        {
            return connection.Outbox.TryReserve()
                ? SendRetryingPublish(connection, topic, payload, options, autoId, ct)
                : RetryingPublishWhenQueueHasRoomAsync(connection, topic, payload, options, autoId, ct);
        }

        if (!AwaitingDrainReconnect)
        {
            return Task.FromException<PublishAck>(NotConnected()); // an unannounced outage fails fast, as without retries
        }

        // Announced outage (DRAIN): copy the PUB now, send it once the client has reconnected.
        var template = EncodePublish(requestId: 0, topic, payload, options, autoId);
        var outcome = new TaskCompletionSource<PublishAck>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = RetryPublishAsync(outcome, template, topic, lastError: null, attempts: 0, previous: connection ?? _connection, ct);
        return outcome.Task;
    }

    private async Task<PublishAck> RetryingPublishWhenQueueHasRoomAsync(ClientConnection connection, string topic, ReadOnlyMemory<byte> payload, PublishOptions options, ulong autoId, CancellationToken ct)
    {
        await ReserveSlotAsync(connection, ct).ConfigureAwait(false);
        return await SendRetryingPublish(connection, topic, payload, options, autoId, ct).ConfigureAwait(false);
    }

    private Task<PublishAck> SendRetryingPublish(ClientConnection connection, string topic, ReadOnlyMemory<byte> payload, in PublishOptions options, ulong autoId, CancellationToken ct)
    {
        var request = new RetryingPublishRequest(connection.Pending.NextId(), topic, this, connection, ct);
        Frame frame;
        try
        {
            frame = EncodePublish(request.RequestId, topic, payload, options, autoId);
        }
        catch
        {
            connection.Outbox.ReleaseSlot();
            throw;
        }

        frame.AddRef(); // one reference for the outbox, one kept by the request for a retry
        request.Retain(frame);
        return connection.Enqueue(request, frame, holdsSlot: true, ct);
    }

    /// <summary>
    /// Called by a <see cref="RetryingPublishRequest"/> that was refused or failed (receive loop, or the connection's end):
    /// true when the retry loop took it over.
    /// </summary>
    internal bool TryRetryPublish(RetryingPublishRequest request, Exception error)
    {
        if (request.Task.IsCompleted || !IsRetryable(error, request.Connection) || _options.PublishRetry.MaxAttempts <= 1)
        {
            return false;
        }

        if (request.TakeFrame() is not { } template)
        {
            return false;
        }

        _ = RetryPublishAsync(request, template, request.Topic, (FastRelayException)error, attempts: 1, request.Connection, request.Cancellation);
        return true;
    }

    /// <summary>
    /// Which failures a retry may follow. All of them mean the PUB was not accepted (BACKOFF, 503), or was sent to a node
    /// that announced its drain (a connection lost after DRAIN): retrying the same message id cannot duplicate it.
    /// </summary>
    private bool IsRetryable(Exception error, ClientConnection? connection) => error switch
    {
        FastRelayBackoffException => true,
        FastRelayConnectionException => _options.Reconnect.Enabled && connection is not null && IsDraining(connection),
        FastRelayException { ErrorCode: ErrorCode.Unavailable } => _options.Reconnect.Enabled,
        _ => false,
    };

    /// <summary>
    /// The retry loop: waits (BACKOFF: the server's retry_after plus jittered exponential growth; 503 or a drained
    /// connection: until the client has reconnected), then sends the retained PUB again with a new request id and the
    /// same message id, until an ACK, a failure that is not retryable, or MaxAttempts. Completes <paramref name="outcome"/>.
    /// </summary>
    private async Task RetryPublishAsync(TaskCompletionSource<PublishAck> outcome, Frame template, string topic, FastRelayException? lastError,
        int attempts, ClientConnection? previous, CancellationToken ct)
    {
        var policy = _options.PublishRetry;
        try
        {
            while (!outcome.Task.IsCompleted)
            {
                if (attempts >= policy.MaxAttempts)
                {
                    outcome.TrySetException(lastError!);
                    return;
                }

                ClientConnection connection;
                if (lastError is FastRelayBackoffException backoff)
                {
                    await Task.Delay(policy.DelayBefore(attempts, backoff.RetryAfter, Random.Shared.NextDouble()), ct).ConfigureAwait(false);
                    connection = Usable() is { } usable && !IsDraining(usable)
                        ? usable
                        : AwaitingDrainReconnect ? await WaitForNewConnectionAsync(previous, ct).ConfigureAwait(false) : throw NotConnected();
                }
                else
                {
                    connection = await WaitForNewConnectionAsync(previous, ct).ConfigureAwait(false);
                }

                attempts++;
                await ReserveSlotAsync(connection, ct).ConfigureAwait(false);
                var request = new PublishRequest(connection.Pending.NextId(), topic);
                Frame frame;
                try
                {
                    frame = Reencode(template, request.RequestId);
                }
                catch
                {
                    connection.Outbox.ReleaseSlot();
                    throw;
                }

                try
                {
                    outcome.TrySetResult(await connection.Enqueue(request, frame, holdsSlot: true, ct).ConfigureAwait(false));
                    return;
                }
                catch (FastRelayException ex) when (IsRetryable(ex, connection))
                {
                    lastError = ex;
                    previous = connection;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            outcome.TrySetCanceled(ct);
        }
        catch (Exception ex)
        {
            outcome.TrySetException(ex);
        }
        finally
        {
            template.Release();
        }
    }

    /// <summary>The retained PUB with a new request id (everything else, message id included, unchanged).</summary>
    private static Frame Reencode(Frame template, ulong requestId)
    {
        var error = EnvelopeCodec.TryDecode(template.Memory, out var pub, out _);
        if (error != DecodeError.None)
        {
            throw new InvalidOperationException($"a retained PUB could not be decoded: {error}");
        }

        pub.RequestId = requestId;
        pub.Present |= FieldMask.RequestId;
        return EnvelopeCodec.Encode(FramePool.Shared.Rent(), in pub);
    }

    /// <summary>
    /// Waits until the client is connected on a connection other than <paramref name="previous"/> that is not draining:
    /// the old connection ends (the server closes it after the drain), the client reconnects after the DRAIN delay.
    /// Bounded by the drain delay plus ConnectTimeout and RequestTimeout; fails fast when the client closes.
    /// </summary>
    private async Task<ClientConnection> WaitForNewConnectionAsync(ClientConnection? previous, CancellationToken ct)
    {
        var drain = Volatile.Read(ref _drain)?.Notice.RetryAfter ?? TimeSpan.Zero;
        var bound = _options.RequestTimeout == Timeout.InfiniteTimeSpan || _options.ConnectTimeout == Timeout.InfiniteTimeSpan
            ? Timeout.InfiniteTimeSpan
            : drain + _options.ConnectTimeout + _options.RequestTimeout;
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(bound);
        try
        {
            while (true)
            {
                var current = _connection;
                if (current is not null && (ReferenceEquals(current, previous) || IsDraining(current)) && current.IsOpen)
                {
                    await current.Ended.WaitAsync(wait.Token).ConfigureAwait(false);
                    continue;
                }

                await WaitUntilConnectedAsync(wait.Token).ConfigureAwait(false);
                if (Usable() is { } usable && !ReferenceEquals(usable, previous) && !IsDraining(usable))
                {
                    return usable;
                }

                await Task.Delay(1, wait.Token).ConfigureAwait(false); // between a connection's end and the state change
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new FastRelayConnectionException(ErrorCode.Unavailable,
                $"the client did not reconnect within {bound.TotalMilliseconds:0} ms after the server's drain; the publish was not sent again");
        }
    }
}
