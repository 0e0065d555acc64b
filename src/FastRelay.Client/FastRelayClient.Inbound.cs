using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Dispatches what one connection's receive loop reads: replies to their pending request by request id, events to
    /// their topic's route, presence announcements to the topic's subscriptions, PING answered with PONG, DRAIN and
    /// unsolicited errors raised as events. Never waits.
    /// </summary>
    private sealed class Inbound(FastRelayClient client, ClientConnection connection) : IEnvelopeReceiver
    {
        // Most events on a connection come from a few publishers: reuse the last publisher id string.
        private byte[] _lastPublisherUtf8 = [];
        private string? _lastPublisher;

        public void OnEnvelope(ReadOnlyMemory<byte> bytes)
        {
            if (client.InterceptEnvelopeForTest is { } intercept && intercept(bytes))
            {
                return;
            }

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
                    or FrameType.Recovered or FrameType.NotRecovered or FrameType.Presence or FrameType.KvResult
                    when envelope.RequestId != 0:
                    // Unknown ids are replies that arrived after their request timed out or was cancelled.
                    connection.Pending.Take(envelope.RequestId)?.OnReply(in envelope);
                    break;
                case FrameType.Presence:
                    client.OnPresenceAnnouncement(in envelope);
                    break;
                case FrameType.Error or FrameType.Backoff:
                    client.OnUnsolicitedError(connection, in envelope);
                    break;
                case FrameType.Ping:
                    AnswerPing(in envelope);
                    break;
                case FrameType.Drain:
                    client.OnDrain(connection, new DrainNotice(TimeSpan.FromMilliseconds(envelope.RetryAfterMs),
                        envelope.Has(FieldMask.Node) ? System.Text.Encoding.UTF8.GetString(envelope.Node.Span) : null));
                    break;
                default:
                    break; // frame types this client does not use: ignored, not fatal
            }
        }

        /// <summary>
        /// Drops duplicates (seq at or below the topic's last delivered), repairs or reports gaps, then hands the event to
        /// every subscription of its topic and every pattern subscription that matches it.
        /// </summary>
        private void Deliver(in Envelope e)
        {
            if (!e.Has(FieldMask.Topic) || !client._subscriptions.TryRoute(e.Topic.Span, out var route))
            {
                return; // in flight when its subscription ended
            }

            var decision = route.Admit(e.Epoch, e.Seq, e.Flags, out var notice);
            if (decision == RouteDecision.Repair)
            {
                if (client.TryStartRepair(connection, route))
                {
                    return; // the replay after RECOVERED brings this event back, in order
                }

                decision = route.AcceptGap(e.Epoch, e.Seq, out var gap);
                notice = gap;
            }

            if (notice is not null)
            {
                foreach (var subscription in route.All)
                {
                    subscription.Notify(notice);
                }
            }

            if (decision != RouteDecision.Deliver)
            {
                return;
            }

            route.Deliver(new RelayEvent(
                route.Topic,
                e.Epoch,
                e.Seq,
                e.Has(FieldMask.ClientId) ? Publisher(e.ClientId.Span) : null,
                e.Has(FieldMask.MessageId) ? e.MessageIdString : null,
                e.Has(FieldMask.PrevEventId) ? e.PrevEventIdString : null,
                e.Timestamp,
                e.Flags,
                e.Payload.IsEmpty ? ReadOnlyMemory<byte>.Empty : e.Payload.ToArray())
            {
                Key = e.Has(FieldMask.Key) ? e.KeyString : null,
            });
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

            connection.TrySend(EncodeControl(pong)); // closing: no PONG needed
        }
    }

    /// <summary>PRESENCE join/leave for a topic: raised on each of the topic's own subscriptions.</summary>
    private void OnPresenceAnnouncement(in Envelope e)
    {
        if (!e.Has(FieldMask.Topic) || !e.Has(FieldMask.ClientId) || !_subscriptions.TryGetExact(e.Topic.Span, out var route))
        {
            return;
        }

        var kind = (e.Flags & EventFlags.Leave) != 0 ? PresenceChangeKind.Left : PresenceChangeKind.Joined;
        var change = new PresenceChange(route.Topic, e.ClientIdString, kind, e.Has(FieldMask.Payload) ? e.Payload.ToArray() : null);
        foreach (var subscription in route.Exact)
        {
            subscription.OnPresence(change);
        }
    }

    private void OnUnsolicitedError(ClientConnection connection, in Envelope envelope)
    {
        var error = ServerErrors.FromReply(envelope);
        if (envelope.Type == FrameType.Error)
        {
            connection.NoteServerError(error.ErrorCode, error.Message);
        }

        Raise(ServerError, this, error);
    }
}
