using System.Buffers;
using FastRelay.Protocol;
using MessagePack;

namespace FastRelay.Client;

/// <summary>A PRESENCE query waiting for its list: a MessagePack array of [client_id (str), info (bin or nil)].</summary>
internal sealed class PresenceRequest(ulong requestId, string topic) : PendingRequest<IReadOnlyList<PresenceMember>>(requestId)
{
    public override string Describe() => $"PRESENCE of '{topic}'";

    protected override FrameType SuccessReply => FrameType.Presence;

    protected override void OnSuccess(in Envelope reply)
    {
        try
        {
            TrySetResult(Decode(reply.Payload));
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or InvalidOperationException)
        {
            TrySetException(new FastRelayException(ErrorCode.BadFrame, $"the server's presence list for '{topic}' is malformed: {ex.Message}"));
        }
    }

    private static PresenceMember[] Decode(ReadOnlyMemory<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return [];
        }

        var reader = new MessagePackReader(payload);
        var members = new PresenceMember[reader.ReadArrayHeader()];
        for (int i = 0; i < members.Length; i++)
        {
            int fields = reader.ReadArrayHeader();
            if (fields < 1)
            {
                throw new InvalidOperationException($"member {i} has no client id");
            }

            string clientId = reader.ReadString() ?? "";
            byte[]? info = null;
            if (fields > 1 && !reader.TryReadNil())
            {
                info = reader.ReadBytes() is { } bytes ? bytes.ToArray() : null;
            }

            for (int extra = 2; extra < fields; extra++)
            {
                reader.Skip(); // forward compatibility
            }

            members[i] = new PresenceMember(clientId, info);
        }

        return members;
    }
}
