using FastRelay.Protocol;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Lists the clients subscribed to <paramref name="topic"/> now, with the presence info their SUB carried. Works for
    /// every topic (announcements of joins and leaves only for the topics the server is configured to announce).
    /// </summary>
    /// <exception cref="FastRelayException">The server refused (400 invalid topic, 403 not allowed to subscribe).</exception>
    /// <exception cref="FastRelayConnectionException">Not connected (closed, or reconnecting).</exception>
    public Task<IReadOnlyList<PresenceMember>> GetPresenceAsync(string topic, CancellationToken ct = default)
    {
        ValidateTopic(topic);
        if (Usable() is not { } connection)
        {
            return Task.FromException<IReadOnlyList<PresenceMember>>(NotConnected());
        }

        var request = new PresenceRequest(connection.Pending.NextId(), topic);
        var frame = EncodeControl(new Envelope(FrameType.Presence).WithRequestId(request.RequestId).WithTopic(topic));
        return connection.Enqueue(request, frame, holdsSlot: false, ct);
    }
}
