using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests.Fakes;

/// <summary>
/// A scripted relay for client tests: answers HELLO, SUB, UNSUB, PUB (with dedup and fan-out to subscribed sessions)
/// and PING as the protocol says. <see cref="Intercept"/> lets a test answer a frame its own way (ERROR, BACKOFF,
/// silence, dropping the connection).
/// </summary>
internal sealed class FakeRelayServer : IAsyncDisposable
{
    private enum Framing { Raw, WebSocket }

    private readonly Socket _listener;
    private readonly Framing _framing;
    private readonly string? _socketPath;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<FakeSession> _accepted = Channel.CreateUnbounded<FakeSession>();
    private readonly Lock _lock = new();
    private readonly List<FakeSession> _sessions = [];
    private readonly Dictionary<string, ulong> _lastSeq = [];
    private readonly Dictionary<(string ClientId, string MessageId), ulong> _seen = [];
    private readonly Task _acceptLoop;
    private int _generatedIds;

    private FakeRelayServer(Socket listener, Framing framing, Uri url, string? socketPath)
    {
        _listener = listener;
        _framing = framing;
        _socketPath = socketPath;
        Url = url;
        _acceptLoop = AcceptLoopAsync();
    }

    public Uri Url { get; }

    public string Tenant { get; set; } = "acme";

    public string Node { get; set; } = "node-a";

    public ulong Epoch { get; set; } = 3;

    /// <summary>A HELLO with this token is refused with ERROR 401 and the connection is closed.</summary>
    public string? RejectedToken { get; set; }

    /// <summary>Gets the first look at every frame; return true when the test handled it.</summary>
    public Func<FakeSession, ReceivedFrame, Task<bool>>? Intercept { get; set; }

    public static FakeRelayServer StartTcp() => StartOnLoopback(Framing.Raw, "tcp");

    public static FakeRelayServer StartWebSocket() => StartOnLoopback(Framing.WebSocket, "ws");

    public static FakeRelayServer StartUnix()
    {
        string path = Path.Combine(Path.GetTempPath(), $"frc-{Guid.NewGuid():N}"[..16] + ".sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        return new FakeRelayServer(listener, Framing.Raw, new Uri("unix://" + path), path);
    }

    private static FakeRelayServer StartOnLoopback(Framing framing, string scheme)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        string path = framing == Framing.WebSocket ? "/ws" : "";
        return new FakeRelayServer(listener, framing, new Uri($"{scheme}://127.0.0.1:{port}{path}"), null);
    }

    public void SetLastSeq(string topic, ulong seq)
    {
        lock (_lock)
        {
            _lastSeq[topic] = seq;
        }
    }

    /// <summary>The next connection the server accepted.</summary>
    public Task<FakeSession> NextSessionAsync() => _accepted.Reader.ReadAsync().AsTask().Within();

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptAsync(_stop.Token);
                _ = ServeAsync(socket);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        IFakeWire wire = _framing == Framing.WebSocket
            ? await WebSocketWire.AcceptAsync(socket, _stop.Token)
            : new RawWire(socket);
        var session = new FakeSession(wire);
        lock (_lock)
        {
            _sessions.Add(session);
        }

        _accepted.Writer.TryWrite(session);
        try
        {
            while (await wire.ReadAsync(_stop.Token) is { } bytes)
            {
                var frame = new ReceivedFrame(bytes);
                session.Record(frame);
                if (Intercept is { } intercept && await intercept(session, frame))
                {
                    continue;
                }

                await AnswerAsync(session, frame);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException
            or ObjectDisposedException or System.Net.WebSockets.WebSocketException or EndOfStreamException)
        {
            // The connection broke or the server stopped.
        }
        finally
        {
            lock (_lock)
            {
                _sessions.Remove(session);
            }

            await wire.DisposeAsync();
            session.MarkEnded();
        }
    }

    private async Task AnswerAsync(FakeSession session, ReceivedFrame frame)
    {
        var e = frame.Envelope;
        switch (e.Type)
        {
            case FrameType.Hello:
                if (RejectedToken is not null && e.Has(FieldMask.Token) && System.Text.Encoding.UTF8.GetString(e.Token.Span) == RejectedToken)
                {
                    await session.SendAsync(new Envelope(FrameType.Error).WithRequestId(e.RequestId).WithError(ErrorCode.Unauthorized, "invalid token"));
                    session.Drop();
                    return;
                }

                session.ClientId = e.Has(FieldMask.ClientId) ? e.ClientIdString : $"gen-{Interlocked.Increment(ref _generatedIds)}";
                await session.SendAsync(new Envelope(FrameType.Welcome).WithRequestId(e.RequestId).WithVersion(ProtocolLimits.Version)
                    .WithClientId(session.ClientId).WithTenant(Tenant).WithNode(Node));
                return;

            case FrameType.Sub:
                ulong last;
                lock (_lock)
                {
                    session.Topics.Add(frame.Topic!);
                    last = _lastSeq.GetValueOrDefault(frame.Topic!);
                }

                await session.SendAsync(new Envelope(FrameType.Ack).WithRequestId(e.RequestId).WithTopic(frame.Topic!).WithEpoch(Epoch).WithSeq(last));
                return;

            case FrameType.Unsub:
                bool removed;
                lock (_lock)
                {
                    removed = session.Topics.Remove(frame.Topic!);
                }

                await session.SendAsync(removed
                    ? new Envelope(FrameType.Ack).WithRequestId(e.RequestId).WithTopic(frame.Topic!)
                    : new Envelope(FrameType.Error).WithRequestId(e.RequestId).WithError(ErrorCode.NotFound, "not subscribed"));
                return;

            case FrameType.Pub:
                await PublishAsync(session, frame);
                return;

            case FrameType.Ping:
                var pong = new Envelope(FrameType.Pong);
                if (e.Has(FieldMask.RequestId))
                {
                    pong = pong.WithRequestId(e.RequestId);
                }

                await session.SendAsync(pong);
                return;
        }
    }

    private async Task PublishAsync(FakeSession publisher, ReceivedFrame frame)
    {
        var e = frame.Envelope;
        string topic = frame.Topic!;
        ulong seq;
        bool duplicate = false;
        FakeSession[] subscribers;
        lock (_lock)
        {
            var key = (publisher.ClientId, e.Has(FieldMask.MessageId) ? e.MessageIdString : "");
            if (key.Item2.Length > 0 && _seen.TryGetValue(key, out ulong original))
            {
                seq = original;
                duplicate = true;
            }
            else
            {
                seq = _lastSeq[topic] = _lastSeq.GetValueOrDefault(topic) + 1;
                if (key.Item2.Length > 0)
                {
                    _seen[key] = seq;
                }
            }

            subscribers = duplicate ? [] : [.. _sessions.Where(s => s.Topics.Contains(topic))];
        }

        if (e.RequestId != 0)
        {
            var ack = new Envelope(FrameType.Ack).WithRequestId(e.RequestId).WithTopic(topic).WithEpoch(Epoch).WithSeq(seq);
            await publisher.SendAsync(duplicate ? ack.WithFlags(EventFlags.Duplicate) : ack);
        }

        var delivery = new Envelope(FrameType.Event).WithTopic(topic).WithEpoch(Epoch).WithSeq(seq).WithClientId(publisher.ClientId)
            .WithTimestamp(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000).WithPayload(e.Payload);
        if (e.Has(FieldMask.MessageId))
        {
            delivery = delivery.WithMessageId(e.MessageId);
        }

        if (e.Has(FieldMask.PrevEventId))
        {
            delivery = delivery.WithPrevEventId(e.PrevEventId);
        }

        if (e.Has(FieldMask.Key))
        {
            delivery = delivery.WithKey(e.Key);
        }

        if (e.Has(FieldMask.Flags))
        {
            delivery = delivery.WithFlags(e.Flags);
        }

        foreach (var subscriber in subscribers)
        {
            await subscriber.SendAsync(delivery);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _acceptLoop;
        FakeSession[] open;
        lock (_lock)
        {
            open = [.. _sessions];
        }

        foreach (var session in open)
        {
            session.Drop();
        }

        if (_socketPath is not null)
        {
            File.Delete(_socketPath);
        }
    }
}
