using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Reads a key of the relay's key-value store (the tenant's namespace; keys follow the topic-name rules); null when
    /// it does not exist or has expired.
    /// </summary>
    /// <exception cref="FastRelayException">The server refused (400 invalid key, 403 not allowed to subscribe to it).</exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public Task<KvEntry?> KvGetAsync(string key, CancellationToken ct = default)
    {
        ValidateTopic(key);
        return SendKv(key, new Envelope(FrameType.KvGet), ct);
    }

    /// <summary>Writes a key and returns its new version. The store is in memory on the relay: a restart empties it.</summary>
    /// <exception cref="FastRelayKvConflictException">
    /// <see cref="KvSetOptions.ExpectedVersion"/> did not match, or <see cref="KvSetOptions.IfAbsent"/> and the key exists.
    /// </exception>
    /// <exception cref="FastRelayException">The server refused (400, 403 not allowed to publish to the key, 413 too large).</exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public async Task<ulong> KvSetAsync(string key, ReadOnlyMemory<byte> value, KvSetOptions? options = null, CancellationToken ct = default)
    {
        ValidateTopic(key);
        var set = new Envelope(FrameType.KvSet).WithPayload(value);
        if (options is not null)
        {
            if (options.Ttl is { } ttl)
            {
                double ms = Math.Ceiling(ttl.TotalMilliseconds);
                if (ms < 1 || ms > uint.MaxValue)
                {
                    throw new ArgumentOutOfRangeException(nameof(options), ttl, "Ttl must be between 1 ms and uint.MaxValue ms.");
                }

                set = set.WithTtlMs((uint)ms);
            }

            if (options.ExpectedVersion is { } expected)
            {
                set = set.WithSeq(expected);
            }

            if (options.IfAbsent)
            {
                set = set.WithFlags(EventFlags.IfAbsent);
            }
        }

        var result = await SendKv(key, set, ct).ConfigureAwait(false);
        return result?.Version ?? 0;
    }

    /// <summary>Deletes a key (deleting an absent key succeeds); with <paramref name="expectedVersion"/> only when its version matches.</summary>
    /// <exception cref="FastRelayKvConflictException">The key exists with another version than <paramref name="expectedVersion"/>.</exception>
    /// <exception cref="FastRelayException">The server refused (400, 403).</exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public Task KvDeleteAsync(string key, ulong? expectedVersion = null, CancellationToken ct = default)
    {
        ValidateTopic(key);
        var delete = new Envelope(FrameType.KvDelete);
        if (expectedVersion is { } expected)
        {
            delete = delete.WithSeq(expected);
        }

        return SendKv(key, delete, ct);
    }

    private Task<KvEntry?> SendKv(string key, Envelope envelope, CancellationToken ct)
    {
        if (Usable() is not { } connection)
        {
            return Task.FromException<KvEntry?>(NotConnected());
        }

        var request = new KvRequest(connection.Pending.NextId(), key, envelope.Type);
        var frame = EncodeControl(envelope.WithRequestId(request.RequestId).WithTopic(key));
        return connection.Enqueue(request, frame, holdsSlot: false, ct);
    }
}
