using System.Buffers.Binary;
using System.Diagnostics;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Targets;
using FastRelay.LoadGen.Wire;

namespace FastRelay.LoadGen.Clients;

/// <summary>
/// A simulated publisher: one connection publishing round-robin over its topics, each payload stamped with
/// Stopwatch.GetTimestamp() in its first 8 bytes. <see cref="Publish"/> runs on the driver thread; the replies
/// (FastRelay ACK/BACKOFF, RESP integer) are counted by the connection's receive loop.
/// </summary>
internal sealed class Publisher : IInboundSink
{
    private const ulong FirstRequestId = 1000; // below: setup requests (HELLO = 1)

    private readonly RunState _run;
    private readonly ReadOnlyMemory<byte>[] _topics;
    private readonly byte[] _payload;
    private readonly byte[] _sendBuffer;
    private readonly int _maxPublishBytes;
    private int _nextTopic;
    private ulong _nextRequestId = FirstRequestId;

    private long _sent;
    private long _replies;
    private long _accepted;
    private long _receivers;
    private long _backoffs;
    private long _errors;

    private readonly FastRelay.Protocol.EventFlags[]? _flags;
    private int _nextFlag;

    /// <param name="flags">Flags for successive publishes, cycled (null: none, every event critical).</param>
    public Publisher(ClientConnection connection, RunState run, ReadOnlyMemory<byte>[] topics, int payloadBytes, FastRelay.Protocol.EventFlags[]? flags = null)
    {
        _flags = flags;
        Connection = connection;
        _run = run;
        _topics = topics;
        _payload = new byte[payloadBytes];
        Random.Shared.NextBytes(_payload);
        int longestTopic = topics.Max(t => t.Length);
        _maxPublishBytes = connection.Wire.MaxPublishBytes(longestTopic, payloadBytes);
        _sendBuffer = new byte[Math.Max(64 * 1024, _maxPublishBytes * 4)];
    }

    public ClientConnection Connection { get; }

    public Task? ReceiveLoop { get; private set; }

    /// <summary>Publishes written to the socket.</summary>
    public long Sent => Volatile.Read(ref _sent);

    /// <summary>Replies received (ACK, BACKOFF, ERROR, RESP integer).</summary>
    public long Replies => Volatile.Read(ref _replies);

    /// <summary>Publishes the server accepted (FastRelay ACK; every RESP integer reply).</summary>
    public long Accepted => Volatile.Read(ref _accepted);

    /// <summary>Sum of the receivers RESP reported per PUBLISH.</summary>
    public long Receivers => Volatile.Read(ref _receivers);

    public long Backoffs => Volatile.Read(ref _backoffs);

    public long Errors => Volatile.Read(ref _errors);

    public void Start() => ReceiveLoop = Connection.RunReceiveLoopAsync(this);

    /// <summary>Driver thread: writes <paramref name="count"/> publishes, coalesced into as few sends as fit the buffer.</summary>
    public void Publish(int count)
    {
        var wire = Connection.Wire;
        byte[] buffer = _sendBuffer;
        int used = 0;
        for (int i = 0; i < count; i++)
        {
            if (buffer.Length - used < _maxPublishBytes)
            {
                Connection.Send(buffer.AsSpan(0, used));
                used = 0;
            }

            var topic = _topics[_nextTopic];
            if (++_nextTopic == _topics.Length)
            {
                _nextTopic = 0;
            }

            BinaryPrimitives.WriteInt64LittleEndian(_payload, Stopwatch.GetTimestamp());
            FastRelay.Protocol.EventFlags flags = 0;
            if (_flags is { } pattern)
            {
                flags = pattern[_nextFlag];
                if (++_nextFlag == pattern.Length)
                {
                    _nextFlag = 0;
                }
            }

            used += wire.WritePublish(buffer.AsSpan(used), topic, _payload, _nextRequestId++, flags);
        }

        if (used > 0)
        {
            Connection.Send(buffer.AsSpan(0, used));
        }

        Volatile.Write(ref _sent, _sent + count);
    }

    public void BeginBatch(long now)
    {
    }

    // One receive loop per connection: the counters have a single writer; readers use Volatile.
    public void OnInbound(in Inbound message)
    {
        switch (message.Kind)
        {
            case InboundKind.Ack:
                if (message.RequestId >= FirstRequestId)
                {
                    Volatile.Write(ref _accepted, _accepted + 1);
                    Volatile.Write(ref _replies, _replies + 1);
                }

                break;
            case InboundKind.Integer:
                Volatile.Write(ref _receivers, _receivers + message.Value);
                Volatile.Write(ref _accepted, _accepted + 1);
                Volatile.Write(ref _replies, _replies + 1);
                break;
            case InboundKind.Backoff:
                Volatile.Write(ref _backoffs, _backoffs + 1);
                Volatile.Write(ref _replies, _replies + 1);
                break;
            case InboundKind.Error:
                Volatile.Write(ref _errors, _errors + 1);
                if (message.RequestId >= FirstRequestId || !Connection.Wire.Kind.IsFastRelay())
                {
                    Volatile.Write(ref _replies, _replies + 1);
                }

                _run.CountError(in message);
                break;
            case InboundKind.Close:
                _run.CountClose(null);
                break;
        }
    }

    public void EndBatch()
    {
    }

    public void OnClosed(Exception? error) => _run.CountClose(error);
}
