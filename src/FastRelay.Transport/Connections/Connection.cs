using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport.Connections;

/// <summary>
/// One accepted socket: a read loop over a PipeReader with zero-byte reads (an idle connection holds no receive
/// buffer) that hands whole envelopes to its <see cref="Session"/>, and a writer that drains the session's
/// outbox, coalescing every queued frame into one send. A shard thread about to go idle may do the writer's job
/// itself (<see cref="WriteInline"/>, a non-blocking send) when nobody is sending; a send right taken by CAS keeps
/// the two from ever interleaving bytes. Subclasses supply the framing.
/// </summary>
internal abstract class Connection : IOutboxWriter
{
    // Who may write to the socket. Exactly one party holds the right at a time, so bytes never interleave:
    // the async writer (Writer), a shard thread writing inline at the end of its batch (Inline), or nobody (Idle).
    // HandedOff: an inline write stopped short (socket full, frame too large, error); the unsent rest is in the
    // carry fields and only the async writer may take over. Closed: the writer has finished for good.
    private const int SenderIdle = 0;
    private const int SenderWriter = 1;
    private const int SenderInline = 2;
    private const int SenderHandedOff = 3;
    private const int SenderClosed = 4;

    private int _socketClosed;
    private int _sender;
    private int _wakeOnRelease;
    private byte[]? _carry;
    private int _carryStart;
    private int _carryEnd;
    private Frame? _carryFrame;
    private long _inlineWrites;
    private long _inlineHandOffs;

    protected Connection(Socket socket, Session session, TransportContext context)
    {
        Socket = socket;
        Session = session;
        Context = context;
        Input = PipeReader.Create(
            new NetworkStream(socket, ownsSocket: false),
            new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true));
        if (context.Options.InlineSends)
        {
            // Synchronous sends return WouldBlock instead of waiting (async operations are unaffected: .NET keeps
            // the descriptor non-blocking for them anyway). NetworkStream refuses a non-blocking socket at
            // construction only, and the pipe reader uses it asynchronously.
            socket.Blocking = false;
            session.Outbox.AttachWriter(this);
        }
    }

    protected Socket Socket { get; }

    /// <summary>Inline writes that sent everything they took (written only by the holder of the send right).</summary>
    public long InlineWrites => Volatile.Read(ref _inlineWrites);

    /// <summary>Inline writes that left the rest to the async writer (socket full, large frame, error).</summary>
    public long InlineHandOffs => Volatile.Read(ref _inlineHandOffs);

    public Session Session { get; }

    protected TransportContext Context { get; }

    protected PipeReader Input { get; }

    private long _lastInboundMs = Environment.TickCount64;
    private Timer? _handshakeDeadline;

    /// <summary>The timer that aborts the connection if HELLO does not come in time; dropped once it has.</summary>
    internal Timer? HandshakeDeadline
    {
        get => _handshakeDeadline;
        set => _handshakeDeadline = value;
    }
    private long _pingedAtMs;

    /// <summary>When the peer last sent anything (Environment.TickCount64).</summary>
    public long LastInboundMs => Volatile.Read(ref _lastInboundMs);

    /// <summary>Read loops call this after every read that returned data.</summary>
    protected void OnInput()
    {
        Volatile.Write(ref _lastInboundMs, Environment.TickCount64);
        if (_handshakeDeadline is { } deadline && Session.State == SessionState.Open)
        {
            // An idle connection should not keep a timer alive for its whole life.
            _handshakeDeadline = null;
            deadline.Dispose();
        }
    }

    /// <summary>Keepalive and idle timeout, driven once a second by the server.</summary>
    internal void CheckIdle(long nowMs, long keepAliveMs, long idleTimeoutMs)
    {
        if (Session.State != SessionState.Open)
        {
            return;
        }

        long silent = nowMs - LastInboundMs;
        if (idleTimeoutMs > 0 && silent >= idleTimeoutMs)
        {
            Abort(SessionCloseKind.PolicyViolation, $"idle timeout: nothing received for {silent / 1000} s");
        }
        else if (silent >= keepAliveMs && _pingedAtMs <= LastInboundMs)
        {
            _pingedAtMs = nowMs;
            SendKeepAlive();
        }
    }

    /// <summary>A keepalive the peer answers by itself: an envelope PING (WebSocket sends a protocol ping instead).</summary>
    protected virtual void SendKeepAlive() => Session.SendPing();

    protected int MaxMessageBytes => Context.Engine.Options.MaxMessageBytes;

    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when <see cref="RunAsync"/> has torn the connection down.</summary>
    public Task Completion => _completed.Task;

    /// <summary>Runs the connection to its end; never throws.</summary>
    public async Task RunAsync()
    {
        try
        {
            await RunCoreAsync().ConfigureAwait(false);
        }
        finally
        {
            _completed.TrySetResult();
        }
    }

    private async Task RunCoreAsync()
    {
        Session.OnClosing(Input.CancelPendingRead);
        var writer = WriteLoopAsync();
        bool peerClosed = false;
        try
        {
            peerClosed = await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
            peerClosed = true;
        }
        catch (Exception ex)
        {
            Context.Logger.LogWarning(ex, "Read loop of {Session} failed", Session);
            Session.Close(SessionCloseKind.InternalError, "internal error");
        }

        Session.Close(SessionCloseKind.Normal, "connection closed by peer");
        try
        {
            // The writer flushes what is queued (an ERROR, a close frame), then shuts down our sending side.
            await writer.WaitAsync(Context.Options.CloseTimeout).ConfigureAwait(false);
            if (!peerClosed)
            {
                // Read until the peer closes too, so unread input does not turn our close into a reset
                // that could destroy the last frames in flight.
                await DrainInputAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (IsDisconnect(ex) || ex is TimeoutException)
        {
        }

        Session.OnTransportClosed();
        CloseSocket();
        await Input.CompleteAsync().ConfigureAwait(false);
        await writer.ConfigureAwait(false);
    }

    private async Task DrainInputAsync()
    {
        using var timeout = new CancellationTokenSource(Context.Options.CloseTimeout);
        while (true)
        {
            var result = await Input.ReadAsync(timeout.Token).ConfigureAwait(false);
            Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return;
            }
        }
    }

    /// <summary>Reads frames until the peer closes (returns true) or the session ends (returns false).</summary>
    protected abstract Task<bool> ReadLoopAsync();

    /// <summary>What <see cref="TryHandleNext"/> did with the front of the input.</summary>
    protected enum FrameOutcome : byte
    {
        /// <summary>No whole frame yet: wait for more input.</summary>
        NeedMoreData,
        /// <summary>A frame was handled; there may be more.</summary>
        Handled,
        /// <summary>The session is closing: stop reading.</summary>
        Stop,
    }

    /// <summary>Parses and handles one frame from the front of <paramref name="buffer"/> (advancing it).</summary>
    protected abstract FrameOutcome TryHandleNext(ref ReadOnlySequence<byte> buffer);

    /// <summary>
    /// The read loop both framings share: read, hand every whole frame to <see cref="TryHandleNext"/>, keep the
    /// partial rest for the next read. True when the peer closed, false when the session ended.
    /// </summary>
    protected async Task<bool> ReadFramesAsync()
    {
        while (true)
        {
            var result = await Input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                return false;
            }

            var buffer = result.Buffer;
            OnInput();
            var outcome = FrameOutcome.Handled;
            try
            {
                while ((outcome = TryHandleNext(ref buffer)) == FrameOutcome.Handled)
                {
                }
            }
            finally
            {
                Input.AdvanceTo(buffer.Start, buffer.End);
            }

            if (outcome == FrameOutcome.Stop)
            {
                return false;
            }

            if (result.IsCompleted)
            {
                return true;
            }
        }
    }

    /// <summary>Size of the transport header in front of an envelope of <paramref name="bodyLength"/> bytes.</summary>
    protected abstract int HeaderSize(int bodyLength);

    /// <summary>Writes the transport header for an envelope of <paramref name="bodyLength"/> bytes.</summary>
    protected abstract void WriteHeader(Span<byte> destination, int bodyLength);

    /// <summary>Transport control bytes to send before queued frames (a WebSocket pong); returns bytes written.</summary>
    protected virtual int WritePending(Span<byte> destination) => 0;

    /// <summary>Last bytes to send when the session has closed (a WebSocket close frame); returns bytes written.</summary>
    protected virtual int WriteClosing(Span<byte> destination, SessionClose reason) => 0;

    /// <summary>Hands a whole envelope to the session; copies it first when it spans pipe segments.</summary>
    protected bool Deliver(in ReadOnlySequence<byte> body)
    {
        if (body.IsSingleSegment)
        {
            return Session.OnEnvelope(body.First);
        }

        int length = (int)body.Length;
        byte[] scratch = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            body.CopyTo(scratch);
            return Session.OnEnvelope(new ReadOnlyMemory<byte>(scratch, 0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private async Task WriteLoopAsync()
    {
        var outbox = Session.Outbox;
        try
        {
            while (true)
            {
                await outbox.WaitAsync().ConfigureAwait(false);
                if (!TryClaimForWriter())
                {
                    continue; // a shard thread is writing inline; it wakes us again when it lets go
                }

                await SendCarryAsync().ConfigureAwait(false);
                await DrainAsync(outbox).ConfigureAwait(false);
                if (!outbox.IsCompleted)
                {
                    Release(outbox);
                    continue;
                }

                // Closing, and the writer keeps the send right from here on. Wake the read loop now, so the
                // connection's teardown (bounded by CloseTimeout) does not wait for a peer that may never read
                // what is still queued.
                Input.CancelPendingRead();
                if (Session.CloseReason?.Kind == SessionCloseKind.SlowConsumer)
                {
                    outbox.DiscardAll(); // its backlog is why it is closed: do not try to push it out first
                }

                await DrainAsync(outbox).ConfigureAwait(false);
                await SendClosingAsync().ConfigureAwait(false);
                break;
            }
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
            Session.Close(SessionCloseKind.Normal, "connection lost while writing");
        }
        catch (Exception ex)
        {
            Context.Logger.LogWarning(ex, "Writer of {Session} failed", Session);
            Session.Close(SessionCloseKind.InternalError, "internal error");
        }
        finally
        {
            // The writer holds the send right on every way out of the loop: nobody else sends from now on.
            Volatile.Write(ref _sender, SenderClosed);
            DiscardCarry();
            outbox.DiscardAll();
        }

        // Nothing more will be sent: half-close, and wake the read loop so the connection winds down.
        ShutdownSend();
        Input.CancelPendingRead();
    }

    /// <summary>Copies queued frames into one pooled buffer per send; large frames go out without the copy.</summary>
    private async ValueTask DrainAsync(Outbox outbox)
    {
        byte[]? buffer = null;
        try
        {
            int used = 0;
            while (true)
            {
                if (buffer is null)
                {
                    buffer = ArrayPool<byte>.Shared.Rent(Context.Options.SendBufferBytes);
                    used = WritePending(buffer);
                }

                if (!outbox.TryDequeue(out var frame))
                {
                    if (used > 0)
                    {
                        await SendAsync(buffer.AsMemory(0, used)).ConfigureAwait(false);
                        used = WritePending(buffer);
                        continue; // more may have arrived while sending
                    }

                    return;
                }

                try
                {
                    int header = HeaderSize(frame.Length);
                    int needed = header + frame.Length;
                    if (needed > buffer.Length - used && used > 0)
                    {
                        await SendAsync(buffer.AsMemory(0, used)).ConfigureAwait(false);
                        used = WritePending(buffer);
                    }

                    if (needed > buffer.Length - used)
                    {
                        WriteHeader(buffer.AsSpan(used), frame.Length);
                        await SendAsync(buffer.AsMemory(used, header)).ConfigureAwait(false);
                        await SendAsync(frame.Memory).ConfigureAwait(false);
                        continue;
                    }

                    WriteHeader(buffer.AsSpan(used), frame.Length);
                    used += header;
                    frame.Span.CopyTo(buffer.AsSpan(used));
                    used += frame.Length;
                }
                finally
                {
                    frame.Release();
                }
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// Shard thread, end of a batch, the shard about to go idle: if no one is sending, copy what is queued into one
    /// buffer exactly as <see cref="DrainAsync"/> would and send it without blocking. Whatever does not go out at
    /// once (the socket is full, a frame does not fit, an error) is handed to the async writer, which continues from
    /// the exact byte. Never waits on the socket.
    /// </summary>
    public void WriteInline()
    {
        var outbox = Session.Outbox;
        if (outbox.IsCompleted || Interlocked.CompareExchange(ref _sender, SenderInline, SenderIdle) != SenderIdle)
        {
            // The writer is running (it may have dequeued last before our frame arrived) or closing: make sure it
            // looks again. Cheap when it is running: the signal is only marked.
            outbox.Wake();
            return;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(Context.Options.SendBufferBytes);
        int used = 0;
        int sent = 0;
        Frame? next = null;
        try
        {
            used = WritePending(buffer);
            while (outbox.TryDequeue(out var frame))
            {
                int header = HeaderSize(frame.Length);
                if (header + frame.Length > buffer.Length - used)
                {
                    next = frame; // the writer sends it, after the bytes before it
                    break;
                }

                WriteHeader(buffer.AsSpan(used), frame.Length);
                used += header;
                frame.Span.CopyTo(buffer.AsSpan(used));
                used += frame.Length;
                frame.Release();
            }

            if (used > 0)
            {
                // Non-blocking: returns what the kernel took (0 with WouldBlock when the socket buffer is full).
                sent = Socket.Send(buffer.AsSpan(0, used), SocketFlags.None, out var error);
                if (error != SocketError.Success)
                {
                    sent = 0; // WouldBlock, or a broken connection that the writer's own send will report
                }
            }
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
            // Disposed under us: the writer's send fails the same way and closes the session as usual.
        }

        if (sent == used && next is null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _inlineWrites++;
            Release(outbox);
            return;
        }

        _inlineHandOffs++;
        _carry = buffer;
        _carryStart = sent;
        _carryEnd = used;
        _carryFrame = next;
        Interlocked.Exchange(ref _sender, SenderHandedOff); // publishes the carry to the writer
        outbox.Wake();
    }

    /// <summary>Writer: takes the send right, from nobody or from an inline write that handed off.</summary>
    private bool TryClaimForWriter()
    {
        while (true)
        {
            switch (Volatile.Read(ref _sender))
            {
                case SenderIdle:
                    if (Interlocked.CompareExchange(ref _sender, SenderWriter, SenderIdle) == SenderIdle)
                    {
                        return true;
                    }

                    break;
                case SenderHandedOff:
                    Volatile.Write(ref _sender, SenderWriter); // nobody else leaves HandedOff
                    return true;
                case SenderInline:
                    // Dekker-style with Release: either the inline writer sees this flag after letting go and wakes
                    // us, or we see that it has let go and claim again.
                    Interlocked.Exchange(ref _wakeOnRelease, 1);
                    if (Volatile.Read(ref _sender) == SenderInline)
                    {
                        return false;
                    }

                    break;
                default:
                    return false;
            }
        }
    }

    /// <summary>Gives the send right back, and wakes the writer if anything arrived (or it asked) meanwhile.</summary>
    private void Release(Outbox outbox)
    {
        Interlocked.Exchange(ref _sender, SenderIdle);
        if (Interlocked.Exchange(ref _wakeOnRelease, 0) != 0 || outbox.Count > 0 || outbox.IsCompleted)
        {
            outbox.Wake();
        }
    }

    /// <summary>Writer, after taking over from an inline write: the bytes and the frame it could not send.</summary>
    private async ValueTask SendCarryAsync()
    {
        byte[]? carry = _carry;
        if (carry is null)
        {
            return;
        }

        var frame = _carryFrame;
        int start = _carryStart;
        int end = _carryEnd;
        _carry = null;
        _carryFrame = null;
        try
        {
            if (end > start)
            {
                await SendAsync(carry.AsMemory(start, end - start)).ConfigureAwait(false);
            }

            if (frame is not null)
            {
                int header = HeaderSize(frame.Length);
                WriteHeader(carry, frame.Length);
                await SendAsync(carry.AsMemory(0, header)).ConfigureAwait(false);
                await SendAsync(frame.Memory).ConfigureAwait(false);
            }
        }
        finally
        {
            frame?.Release();
            ArrayPool<byte>.Shared.Return(carry);
        }
    }

    private void DiscardCarry()
    {
        if (_carry is { } carry)
        {
            _carry = null;
            _carryFrame?.Release();
            _carryFrame = null;
            ArrayPool<byte>.Shared.Return(carry);
        }
    }

    private async ValueTask SendClosingAsync()
    {
        var reason = Session.CloseReason;
        if (reason is null)
        {
            return;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(256);
        try
        {
            int n = WriteClosing(buffer, reason);
            if (n > 0)
            {
                await SendAsync(buffer.AsMemory(0, n)).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Sends all of <paramref name="bytes"/>. On a non-blocking socket (inline sends on) it first tries a plain
    /// non-blocking send, which usually takes everything: no async operation, and no send event-args cached on the
    /// socket for its whole life (~300 B per connection that only ever got small writes). Only what the kernel did
    /// not take goes through <see cref="Socket.SendAsync(ReadOnlyMemory{byte}, SocketFlags, CancellationToken)"/>.
    /// </summary>
    protected ValueTask<int> SendAsync(ReadOnlyMemory<byte> bytes)
    {
        if (Socket.Blocking || bytes.IsEmpty)
        {
            return Socket.SendAsync(bytes, SocketFlags.None);
        }

        int sent = Socket.Send(bytes.Span, SocketFlags.None, out SocketError error);
        if (error == SocketError.Success && sent == bytes.Length)
        {
            return new ValueTask<int>(sent);
        }

        if (error is SocketError.Success or SocketError.WouldBlock)
        {
            return SendRestAsync(bytes, Math.Max(sent, 0));
        }

        return ValueTask.FromException<int>(new SocketException((int)error));
    }

    private async ValueTask<int> SendRestAsync(ReadOnlyMemory<byte> bytes, int sent)
    {
        await Socket.SendAsync(bytes[sent..], SocketFlags.None).ConfigureAwait(false);
        return bytes.Length;
    }

    private void ShutdownSend()
    {
        try
        {
            if (Volatile.Read(ref _socketClosed) == 0)
            {
                Socket.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
        }
    }

    /// <summary>
    /// Ends the connection from outside its loops (handshake timeout, server stop). When this call is what closes
    /// the session, the writer first sends the closing bytes (a WebSocket close frame with the reason) and a FIN,
    /// and the connection winds down as for any close; the socket is dropped anyway after
    /// <see cref="TransportOptions.CloseTimeout"/>. A session that was already closing (a server stop that waited
    /// in vain) is dropped at once.
    /// </summary>
    /// <remarks>
    /// Disposing the socket while the read loop has a receive pending makes .NET close it abortively (RST):
    /// the peer would get a reset instead of the close frame and the reason.
    /// </remarks>
    public void Abort(SessionCloseKind kind, string reason)
    {
        if (Session.CloseReason is null)
        {
            Session.Close(kind, reason);
            _ = CloseSocketAfterAsync(Context.Options.CloseTimeout);
            return;
        }

        Session.Close(kind, reason);
        CloseSocket();
    }

    private async Task CloseSocketAfterAsync(TimeSpan delay)
    {
        await Task.Delay(delay).ConfigureAwait(false);
        CloseSocket();
    }

    private void CloseSocket()
    {
        if (Interlocked.Exchange(ref _socketClosed, 1) == 0)
        {
            try
            {
                Socket.Dispose();
            }
            catch (Exception ex) when (IsDisconnect(ex))
            {
            }
        }
    }

    protected static bool IsDisconnect(Exception ex) =>
        ex is SocketException or ObjectDisposedException or IOException or OperationCanceledException;
}
