using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    private readonly Lock _serverErrorLock = new();
    private (ErrorCode Code, string? Reason) _lastServerError;

    private (ErrorCode Code, string? Reason) LastServerError
    {
        get
        {
            lock (_serverErrorLock)
            {
                return _lastServerError;
            }
        }
    }

    /// <summary>
    /// Dispatches what the receive loop reads: replies to their pending request by request id, events to the topic's
    /// subscriptions, PING answered with PONG, DRAIN and unsolicited errors raised as events. Never waits.
    /// </summary>
    private sealed class Inbound(FastRelayClient client) : IEnvelopeReceiver
    {
        // Most events on a connection come from a few publishers: reuse the last publisher id string.
        private byte[] _lastPublisherUtf8 = [];
        private string? _lastPublisher;

        public void OnEnvelope(ReadOnlyMemory<byte> bytes)
        {
            var error = EnvelopeCodec.TryDecode(bytes, out var envelope, out var field);
            if (error != DecodeError.None)
            {
                throw new FastRelayConnectionException(ErrorCode.BadFrame,
                    $"the server sent an envelope this client cannot decode: {DecodeErrors.Describe(error, field)}");
            }

            switch (envelope.Type)
            {
                case FrameType.Event:
                    Deliver(in envelope);
                    break;
                case FrameType.Ack or FrameType.Welcome or FrameType.Pong or FrameType.Error or FrameType.Backoff
                    when envelope.RequestId != 0:
                    // Unknown ids are replies that arrived after their request timed out or was cancelled.
                    client._pending.Take(envelope.RequestId)?.OnReply(in envelope);
                    break;
                case FrameType.Error or FrameType.Backoff:
                    client.OnUnsolicitedError(in envelope);
                    break;
                case FrameType.Ping:
                    client.AnswerPing(in envelope);
                    break;
                case FrameType.Drain:
                    client.Raise(client.Drained, new DrainNotice(TimeSpan.FromMilliseconds(envelope.RetryAfterMs),
                        envelope.Has(FieldMask.Node) ? System.Text.Encoding.UTF8.GetString(envelope.Node.Span) : null));
                    break;
                default:
                    break; // frame types this client does not use yet (presence, KV, ...): ignored, not fatal
            }
        }

        private void Deliver(in Envelope e)
        {
            if (!e.Has(FieldMask.Topic) || !client._subscriptions.TryGet(e.Topic.Span, out string topic, out var subscriptions))
            {
                return; // in flight when its subscription ended
            }

            var relayEvent = new RelayEvent(
                topic,
                e.Epoch,
                e.Seq,
                e.Has(FieldMask.ClientId) ? Publisher(e.ClientId.Span) : null,
                e.Has(FieldMask.MessageId) ? e.MessageIdString : null,
                e.Has(FieldMask.PrevEventId) ? e.PrevEventIdString : null,
                e.Timestamp,
                e.Flags,
                e.Payload.IsEmpty ? ReadOnlyMemory<byte>.Empty : e.Payload.ToArray());
            foreach (var subscription in subscriptions)
            {
                subscription.Deliver(relayEvent);
            }
        }

        private string Publisher(ReadOnlySpan<byte> utf8)
        {
            if (_lastPublisher is null || !utf8.SequenceEqual(_lastPublisherUtf8))
            {
                _lastPublisherUtf8 = utf8.ToArray();
                _lastPublisher = System.Text.Encoding.UTF8.GetString(utf8);
            }

            return _lastPublisher;
        }
    }

    private void OnUnsolicitedError(in Envelope envelope)
    {
        var error = ServerErrors.FromReply(envelope);
        if (envelope.Type == FrameType.Error)
        {
            lock (_serverErrorLock)
            {
                _lastServerError = (error.ErrorCode, error.Message);
            }
        }

        Raise(ServerError, error);
    }

    private void AnswerPing(in Envelope ping)
    {
        var pong = new Envelope(FrameType.Pong);
        if (ping.Has(FieldMask.RequestId))
        {
            pong = pong.WithRequestId(ping.RequestId);
        }

        if (ping.Has(FieldMask.Payload))
        {
            pong = pong.WithPayload(ping.Payload); // copied by the encoder before the receive buffer moves on
        }

        var frame = EncodeControl(pong);
        if (!_outbox.TryEnqueue(frame, holdsSlot: false))
        {
            frame.Release(); // closing: no PONG needed
        }
    }

    /// <summary>Raises an event on the thread pool: a slow or throwing handler never stalls the receive loop.</summary>
    private void Raise<T>(EventHandler<T>? handler, T args)
    {
        if (handler is not null)
        {
            ThreadPool.QueueUserWorkItem(static state => state.handler(state.sender, state.args), (handler, sender: this, args), preferLocal: false);
        }
    }
}
