using System.Buffers;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Tests.Engine;

/// <summary>A session driven directly (no socket): envelopes go in through OnEnvelope, frames come out of the outbox.</summary>
internal sealed class InProcessClient
{
    private readonly ArrayBufferWriter<byte> _encode = new(1024);
    private ulong _nextRequestId;

    public InProcessClient(RelayEngine engine, string name = "test")
    {
        Session = engine.CreateSession(name, "test");
    }

    public Session Session { get; }

    public bool Send(in Envelope envelope)
    {
        _encode.ResetWrittenCount();
        EnvelopeCodec.Encode(_encode, in envelope);
        return Session.OnEnvelope(_encode.WrittenMemory);
    }

    public ulong NextRequestId() => ++_nextRequestId;

    /// <summary>Sends HELLO and returns the WELCOME (or the ERROR).</summary>
    public async Task<Received> HelloAsync(string? token = null, string? clientId = null)
    {
        var hello = new Envelope(FrameType.Hello).WithRequestId(NextRequestId()).WithVersion(ProtocolLimits.Version);
        if (token is not null)
        {
            hello = hello.WithToken(token);
        }

        if (clientId is not null)
        {
            hello = hello.WithClientId(clientId);
        }

        Send(hello);
        return await ReceiveAsync();
    }

    public async Task<Received> SubscribeAsync(string topic)
    {
        Send(new Envelope(FrameType.Sub).WithRequestId(NextRequestId()).WithTopic(topic));
        return await ReceiveAsync();
    }

    public async Task<Received> PublishAsync(string topic, byte[] payload, EventFlags flags = EventFlags.None)
    {
        var pub = new Envelope(FrameType.Pub).WithRequestId(NextRequestId()).WithTopic(topic).WithPayload(payload);
        if (flags != EventFlags.None)
        {
            pub = pub.WithFlags(flags);
        }

        Send(pub);
        return await ReceiveAsync();
    }

    /// <summary>
    /// Publishes and waits for the ACK, sending again after a BACKOFF (a full shard inbox or tenant lane under a
    /// flood): every call sequences exactly one event, so a test may count on seq and payload staying in step.
    /// The client must not be subscribed to anything (its next frame is taken as the reply).
    /// </summary>
    public async Task<Received> PublishAcceptedAsync(Envelope pub)
    {
        while (true)
        {
            Send(pub.WithRequestId(NextRequestId()));
            var reply = await ReceiveAsync();
            if (reply.Type != FrameType.Backoff)
            {
                Assert.Equal(FrameType.Ack, reply.Type);
                return reply;
            }

            await Task.Yield();
        }
    }

    /// <summary>Next frame from the outbox, decoded into an owned copy; fails the test after the timeout.</summary>
    public async Task<Received> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            if (Session.Outbox.TryDequeue(out var frame))
            {
                try
                {
                    return Received.Decode(frame.Span);
                }
                finally
                {
                    frame.Release();
                }
            }

            if (Session.Outbox.IsCompleted)
            {
                throw new InvalidOperationException($"session closed: {Session.CloseReason}");
            }

            await Session.Outbox.WaitAsync().AsTask().WaitAsync(cts.Token);
        }
    }
}

/// <summary>An owned copy of a decoded envelope, for assertions.</summary>
internal sealed record Received(FrameType Type, ulong RequestId, string? Topic, ulong Epoch, ulong Seq, string? ClientId, byte[] Payload, ErrorCode ErrorCode, string? Reason, EventFlags Flags, string? Tenant, uint RetryAfterMs = 0, string? Key = null)
{
    public static Received Decode(ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        var error = EnvelopeCodec.TryDecode(copy, out var e, out var field);
        Assert.True(error == DecodeError.None, $"server sent an undecodable frame: {error} at {field}");
        return new Received(
            e.Type,
            e.RequestId,
            e.Has(FieldMask.Topic) ? e.TopicString : null,
            e.Epoch,
            e.Seq,
            e.Has(FieldMask.ClientId) ? e.ClientIdString : null,
            e.Payload.ToArray(),
            e.ErrorCode,
            e.Has(FieldMask.Reason) ? e.ReasonString : null,
            e.Flags,
            e.Has(FieldMask.Tenant) ? System.Text.Encoding.UTF8.GetString(e.Tenant.Span) : null,
            e.RetryAfterMs,
            e.Has(FieldMask.Key) ? e.KeyString : null);
    }
}
