using System.Buffers;
using FastRelay.Core.Sessions;
using MessagePack;

namespace FastRelay.Core.Engine;

/// <summary>
/// Topics under <c>$sys.</c> belong to the server: clients may subscribe (if their token allows) but not publish.
/// <c>$sys.connections</c> carries connection lifecycle events of the tenant.
/// </summary>
public static class SystemTopics
{
    public const string Prefix = "$sys.";

    public const string Connections = "$sys.connections";

    internal static ReadOnlySpan<byte> PrefixUtf8 => "$sys."u8;

    internal static bool IsReserved(ReadOnlySpan<byte> topic) => topic.StartsWith(PrefixUtf8);

    /// <summary>
    /// Payload of a lifecycle event: a MessagePack map with string keys
    /// {event: "connected"|"disconnected", client_id, session, transport, remote, reason?}.
    /// </summary>
    internal static byte[] LifecyclePayload(Session session, bool connected, string? reason)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(reason is null ? 5 : 6);
        w.Write("event");
        w.Write(connected ? "connected" : "disconnected");
        w.Write("client_id");
        w.Write(session.ClientId);
        w.Write("session");
        w.Write(session.Id);
        w.Write("transport");
        w.Write(session.Transport);
        w.Write("remote");
        w.Write(session.RemoteEndPoint);
        if (reason is not null)
        {
            w.Write("reason");
            w.Write(reason);
        }

        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
