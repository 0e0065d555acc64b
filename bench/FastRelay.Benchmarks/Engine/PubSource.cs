using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// One encoded PUB (topic, message_id, payload; request_id 0 = fire-and-forget) whose message_id is rewritten in place
/// before each use, as a read loop would see fresh bytes: a repeated (client_id, message_id) inside the dedup window
/// is answered as a duplicate and never delivered. Rewriting 16 hex digits costs a few ns and allocates nothing.
/// </summary>
internal sealed class PubSource
{
    private static readonly byte[] Placeholder = "0000000000000000"u8.ToArray();

    private readonly byte[] _bytes;
    private readonly int _idOffset;
    private ulong _sent;

    public PubSource(string topic, int payloadBytes)
    {
        _bytes = InProcessPeer.Encode(new Envelope(FrameType.Pub)
            .WithTopic(topic)
            .WithMessageId("msg-" + Encoding.UTF8.GetString(Placeholder))
            .WithPayload(Enumerable.Range(0, payloadBytes).Select(i => (byte)i).ToArray()));
        _idOffset = _bytes.AsSpan().IndexOf(Placeholder);
        if (_idOffset < 0 || _bytes.AsSpan(_idOffset + 1).IndexOf(Placeholder) >= 0)
        {
            throw new InvalidOperationException("the message_id placeholder is not unique in the encoded PUB");
        }
    }

    /// <summary>PUBs handed out so far.</summary>
    public ulong Sent => _sent;

    /// <summary>The PUB with the next message_id. Valid until the next call (OnEnvelope copies what it keeps).</summary>
    public ReadOnlyMemory<byte> Next()
    {
        (++_sent).TryFormat(_bytes.AsSpan(_idOffset, Placeholder.Length), out _, "X16");
        return _bytes;
    }
}
