using System.Buffers;
using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Publishes one event and waits for the server's ACK. The payload is copied before this returns.
    /// Cancelling <paramref name="ct"/> stops the wait, not the publish: a queued PUB may still be accepted.
    /// </summary>
    /// <exception cref="ArgumentException">The topic is empty or too long, or the payload exceeds MaxMessageBytes.</exception>
    /// <exception cref="FastRelayBackoffException">The server is overloaded and did NOT accept the publish; retry after RetryAfter.</exception>
    /// <exception cref="FastRelayException">The server refused the publish (ERROR).</exception>
    /// <exception cref="FastRelayConnectionException">
    /// The client is closed or reconnecting, or the connection was lost before the ACK (the PUB may or may not have been
    /// accepted: publish again with the same MessageId once reconnected, and the server's dedup makes that safe).
    /// </exception>
    /// <exception cref="TimeoutException">No reply within RequestTimeout.</exception>
    public Task<PublishAck> PublishAsync(string topic, ReadOnlyMemory<byte> payload, PublishOptions? options = null, CancellationToken ct = default)
    {
        ValidatePublish(topic, payload, options);
        if (ct.IsCancellationRequested)
        {
            return Task.FromCanceled<PublishAck>(ct);
        }

        if (_options.PublishRetry.Enabled)
        {
            return PublishWithRetry(topic, payload, options ?? default, ct);
        }

        if (Usable() is not { } connection || IsDraining(connection))
        {
            return Task.FromException<PublishAck>(NotConnected());
        }

        return connection.Outbox.TryReserve()
            ? SendPublish(connection, topic, payload, options ?? default, ct)
            : PublishWhenQueueHasRoomAsync(connection, topic, payload, options ?? default, ct);
    }

    /// <summary>
    /// Publishes without asking for an ACK (no request id). Completes once the PUB is queued; it waits only when the send
    /// queue is full. A server-side failure is reported through <see cref="ServerError"/>. Queued PUBs that had not
    /// reached the socket when a connection dropped are lost with it.
    /// </summary>
    /// <exception cref="FastRelayConnectionException">The client is closed or reconnecting.</exception>
    public ValueTask PublishNoAckAsync(string topic, ReadOnlyMemory<byte> payload, PublishOptions? options = null, CancellationToken ct = default)
    {
        ValidatePublish(topic, payload, options);
        if (ct.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(ct);
        }

        if (Usable() is not { } connection || IsDraining(connection))
        {
            return ValueTask.FromException(NotConnected());
        }

        return connection.Outbox.TryReserve()
            ? SendPublishNoAck(connection, topic, payload, options ?? default)
            : PublishNoAckWhenQueueHasRoomAsync(connection, topic, payload, options ?? default, ct);
    }

    private async Task<PublishAck> PublishWhenQueueHasRoomAsync(ClientConnection connection, string topic, ReadOnlyMemory<byte> payload, PublishOptions options, CancellationToken ct)
    {
        await ReserveSlotAsync(connection, ct).ConfigureAwait(false);
        return await SendPublish(connection, topic, payload, options, ct).ConfigureAwait(false);
    }

    private async ValueTask PublishNoAckWhenQueueHasRoomAsync(ClientConnection connection, string topic, ReadOnlyMemory<byte> payload, PublishOptions options, CancellationToken ct)
    {
        await ReserveSlotAsync(connection, ct).ConfigureAwait(false);
        await SendPublishNoAck(connection, topic, payload, options).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends one PUB that already holds a send slot and returns the wait for its ACK. Each call uses a fresh request id,
    /// so a BACKOFF retry policy can wrap it (call again after RetryAfter) without changing anything here.
    /// </summary>
    private Task<PublishAck> SendPublish(ClientConnection connection, string topic, ReadOnlyMemory<byte> payload, in PublishOptions options, CancellationToken ct)
    {
        var request = new PublishRequest(connection.Pending.NextId(), topic);
        Frame frame;
        try
        {
            frame = EncodePublish(request.RequestId, topic, payload, options);
        }
        catch
        {
            connection.Outbox.ReleaseSlot();
            throw;
        }

        return connection.Enqueue(request, frame, holdsSlot: true, ct);
    }

    private ValueTask SendPublishNoAck(ClientConnection connection, string topic, ReadOnlyMemory<byte> payload, in PublishOptions options)
    {
        Frame frame;
        try
        {
            frame = EncodePublish(requestId: 0, topic, payload, options);
        }
        catch
        {
            connection.Outbox.ReleaseSlot();
            throw;
        }

        if (!connection.Outbox.TryEnqueue(frame, holdsSlot: true))
        {
            frame.Release();
            connection.Outbox.ReleaseSlot();
            return ValueTask.FromException(connection.NotConnected());
        }

        return ValueTask.CompletedTask;
    }

    private static async Task ReserveSlotAsync(ClientConnection connection, CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, connection.Lifetime);
        try
        {
            await connection.Outbox.ReserveAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw connection.NotConnected();
        }
    }

    /// <summary>
    /// Encodes a PUB into a pooled frame. The strings go through one rented scratch buffer, so the only per-publish
    /// allocations left are the request and its task (none at all for a fire-and-forget publish).
    /// </summary>
    private Frame EncodePublish(ulong requestId, string topic, ReadOnlyMemory<byte> payload, in PublishOptions options, ulong autoId = 0)
    {
        string? messageId = string.IsNullOrEmpty(options.MessageId) ? null : options.MessageId;
        string? prevEventId = string.IsNullOrEmpty(options.PrevEventId) ? null : options.PrevEventId;
        string? key = string.IsNullOrEmpty(options.Key) ? null : options.Key;
        byte[] scratch = ArrayPool<byte>.Shared.Rent(
            Utf8Text.MaxByteCount(topic) + Utf8Text.MaxByteCount(messageId) + Utf8Text.MaxByteCount(prevEventId)
            + Utf8Text.MaxByteCount(key) + AutoIdMaxBytes);
        try
        {
            int used = 0;
            var pub = new Envelope(FrameType.Pub);
            if (requestId != 0)
            {
                pub.RequestId = requestId;
                pub.Present |= FieldMask.RequestId;
            }

            pub.Topic = Utf8Text.Write(scratch, ref used, topic);
            pub.Present |= FieldMask.Topic;
            if (messageId is not null)
            {
                pub.MessageId = Utf8Text.Write(scratch, ref used, messageId);
                pub.Present |= FieldMask.MessageId;
            }
            else if (autoId != 0)
            {
                pub.MessageId = WriteAutoId(scratch, ref used, autoId);
                pub.Present |= FieldMask.MessageId;
            }

            if (prevEventId is not null)
            {
                pub.PrevEventId = Utf8Text.Write(scratch, ref used, prevEventId);
                pub.Present |= FieldMask.PrevEventId;
            }

            if (options.Flags != EventFlags.None)
            {
                pub.Flags = options.Flags;
                pub.Present |= FieldMask.Flags;
            }

            pub.Payload = payload;
            pub.Present |= FieldMask.Payload;
            if (key is not null)
            {
                pub.Key = Utf8Text.Write(scratch, ref used, key);
                pub.Present |= FieldMask.Key;
            }

            var frame = EnvelopeCodec.Encode(FramePool.Shared.Rent(), in pub);
            if (frame.Length > _options.MaxMessageBytes)
            {
                int length = frame.Length;
                frame.Release();
                throw new ArgumentException(
                    $"the PUB envelope is {length} bytes with its headers, over MaxMessageBytes ({_options.MaxMessageBytes}).", nameof(payload));
            }

            return frame;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private void ValidatePublish(string topic, ReadOnlyMemory<byte> payload, PublishOptions? options)
    {
        ValidateTopic(topic);
        if (payload.Length > _options.MaxMessageBytes)
        {
            throw new ArgumentException($"the payload is {payload.Length} bytes, over MaxMessageBytes ({_options.MaxMessageBytes}).", nameof(payload));
        }

        if (options is { } o)
        {
            Utf8Text.ThrowIfTooLong(o.MessageId, ProtocolLimits.MaxIdBytes, nameof(PublishOptions.MessageId));
            Utf8Text.ThrowIfTooLong(o.PrevEventId, ProtocolLimits.MaxIdBytes, nameof(PublishOptions.PrevEventId));
            Utf8Text.ThrowIfTooLong(o.Key, ProtocolLimits.MaxKeyBytes, nameof(PublishOptions.Key));
        }
    }

    private static void ValidateTopic(string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        if (topic.Length == 0)
        {
            throw new ArgumentException("The topic must not be empty.", nameof(topic));
        }

        if (Utf8Text.ByteCount(topic, ProtocolLimits.MaxTopicBytes) > ProtocolLimits.MaxTopicBytes)
        {
            throw new ArgumentException($"The topic is longer than {ProtocolLimits.MaxTopicBytes} UTF-8 bytes.", nameof(topic));
        }
    }
}
