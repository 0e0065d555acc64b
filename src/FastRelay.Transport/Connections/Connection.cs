using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using FastRelay.Core.Sessions;
using FastRelay.Transport.Epoll;
using FastRelay.Protocol;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport.Connections;

/// <summary>
/// One accepted socket: a read loop straight on the socket that hands whole envelopes to its <see cref="Session"/>,
/// and a writer that drains the session's outbox, coalescing every queued frame into one send. The read loop waits
/// for data holding no receive buffer (an epoll edge, or a zero-byte receive with the sockets engine); it then reads without blocking
/// into a pooled buffer, and keeps one only while a frame is incomplete. A shard thread about to go idle may do the
/// writer's job itself (<see cref="WriteInline"/>, a non-blocking send) when nobody is sending; a send right taken
/// by CAS keeps the two from ever interleaving bytes. Subclasses supply the framing.
/// </summary>
internal abstract class Connection : IOutboxWriter, IThreadPoolWorkItem, IReadinessTarget, IValueTaskSource
{
    // Readiness with the epoll engine: no edge since the last wait (Quiet), an edge came while nobody waited
    // (Ready: the next wait returns at once), or the read loop is parked on _readable (Waiting).
    private const int ReadinessQuiet = 0;
    private const int ReadinessReady = 1;
    private const int ReadinessWaiting = 2;

    // Who may write to the socket. Exactly one party holds the right at a time, so bytes never interleave:
    // the async writer (Writer), a shard thread writing inline at the end of its batch (Inline), or nobody (Idle).
    // HandedOff: an inline write stopped short (socket full, frame too large, error); the unsent rest is in the
    // carry fields and only the async writer may take over. Closed: the writer has finished for good.
    private const int SenderIdle = 0;
    private const int SenderWriter = 1;
    private const int SenderInline = 2;
    private const int SenderHandedOff = 3;
    private const int SenderClosed = 4;

    /// <summary>First receive buffer: the size of a burst of small envelopes; it grows for a larger frame.</summary>
    internal const int InitialReceiveBytes = 4096;

    private int _socketClosed;
    private int _sender;
    private int _wakeOnRelease;
    private byte[]? _carry;
    private int _carryStart;
    private int _carryEnd;
    private Frame? _carryFrame;
    private long _inlineWrites;
    private long _inlineHandOffs;

    // Whether the writer runs: not at all (Idle), a pass is running (Running), woken during the pass so one more
    // follows (RunAgain), or finished for good after the close (Exited).
    private const int WriterIdle = 0;
    private const int WriterRunning = 1;
    private const int WriterRunAgain = 2;
    private const int WriterExited = 3;
    private static readonly TaskCompletionSource s_writerExited = new();

    private int _writerRun;
    private TaskCompletionSource? _writerExit;

    // Receive buffer (pooled): held while a read is being parsed or a frame is incomplete, returned otherwise.
    private byte[]? _input;
    private int _inputStart;
    private int _inputEnd;

    private Task? _run;
    private Timer? _closeDeadline;

    // The epoll engine's registration (null with the sockets engine) and the read loop's wait on it.
    private readonly EpollLoop? _epoll;
    private readonly int _fd;
    private readonly SafeSocketHandle? _handle;
    private int _readiness = ReadinessReady; // try a receive first: the upgrade or HELLO is often there already
    private int _hangUp; // an edge said the peer closed or the socket failed: read on until WouldBlock or the end
    private ManualResetValueTaskSourceCore<bool> _readable = new() { RunContinuationsAsynchronously = true };

    protected Connection(Socket socket, Session session, TransportContext context)
    {
        Socket = socket;
        Session = session;
        Context = context;

        session.Outbox.AttachWriter(this, writeInline: context.Options.InlineSends);
        session.OnClosing(static state => ((Connection)state!).OnSessionClosing(), this);

        if (context.Epoll is { } engine)
        {
            // No async receive is ever issued on this socket, and receives and first sends are non-blocking calls on
            // the descriptor (SocketNative): .NET never creates its async context, event args or operations for an
            // idle connection (a busy one gets them at its first SendAsync).
            _handle = socket.SafeHandle;
            _fd = (int)_handle.DangerousGetHandle();
            _epoll = engine.Register(this, _fd);
        }
        else
        {
            // Receives after the zero-byte wait and sends (inline, or the writer's first try) must return WouldBlock
            // instead of waiting. Async operations are unaffected: .NET keeps the descriptor non-blocking for them.
            socket.Blocking = false;
        }
    }

    /// <inheritdoc />
    public ulong EpollToken { get; set; }

    /// <summary>Epoll thread: an edge (input, FIN, error). Wakes the parked read loop, or leaves a mark for its next wait.</summary>
    public void OnReadable(uint events)
    {
        if ((events & (EpollNative.EPOLLRDHUP | EpollNative.EPOLLHUP | EpollNative.EPOLLERR)) != 0)
        {
            // Edge-triggered: the FIN may have come with the data of this same edge, and no edge follows it.
            Volatile.Write(ref _hangUp, 1);
        }

        while (true)
        {
            switch (Volatile.Read(ref _readiness))
            {
                case ReadinessQuiet:
                    if (Interlocked.CompareExchange(ref _readiness, ReadinessReady, ReadinessQuiet) == ReadinessQuiet)
                    {
                        return;
                    }

                    break;
                case ReadinessWaiting:
                    if (Interlocked.CompareExchange(ref _readiness, ReadinessQuiet, ReadinessWaiting) == ReadinessWaiting)
                    {
                        _readable.SetResult(true); // the continuation runs on the thread pool, not here
                        return;
                    }

                    break;
                default:
                    return; // already marked
            }
        }
    }

    /// <summary>
    /// Read loop, after a receive returned WouldBlock: completes at the next edge. An edge that came after that
    /// receive started (even before this call) was marked Ready and completes it at once, so none is lost.
    /// </summary>
    private ValueTask WaitReadableAsync()
    {
        if (Interlocked.CompareExchange(ref _readiness, ReadinessQuiet, ReadinessReady) == ReadinessReady)
        {
            return ValueTask.CompletedTask;
        }

        _readable.Reset();
        if (Interlocked.CompareExchange(ref _readiness, ReadinessWaiting, ReadinessQuiet) == ReadinessQuiet)
        {
            return new ValueTask(this, _readable.Version);
        }

        Volatile.Write(ref _readiness, ReadinessQuiet); // an edge came in between: it is consumed here
        return ValueTask.CompletedTask;
    }

    void IValueTaskSource.GetResult(short token) => _readable.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _readable.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _readable.OnCompleted(continuation, state, token, flags);

    protected Socket Socket { get; }

    /// <summary>Inline writes that sent everything they took (written only by the holder of the send right).</summary>
    public long InlineWrites => Volatile.Read(ref _inlineWrites);

    /// <summary>Inline writes that left the rest to the async writer (socket full, large frame, error).</summary>
    public long InlineHandOffs => Volatile.Read(ref _inlineHandOffs);

    public Session Session { get; }

    protected TransportContext Context { get; }

    /// <summary>The listener that accepted the socket: told when the connection has ended.</summary>
    internal SocketListener? Listener { get; set; }

    /// <summary>The peer's address while it counts against the per-address limit.</summary>
    internal IPAddress? CountedAddress { get; set; }

    /// <summary>Size of the receive buffer held now; 0 when none is (an idle connection).</summary>
    internal int ReceiveBufferBytes => Volatile.Read(ref _input)?.Length ?? 0;

    private long _lastInboundMs = Environment.TickCount64;
    private long _pingedAtMs;

    /// <summary>When the peer last sent anything (Environment.TickCount64).</summary>
    public long LastInboundMs => Volatile.Read(ref _lastInboundMs);

    /// <summary>The read loop calls this after every read that returned data.</summary>
    private void OnInput() => Volatile.Write(ref _lastInboundMs, Environment.TickCount64);

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

    /// <summary>Completes when the connection has been torn down (never faults).</summary>
    public Task Completion => _run ?? Task.CompletedTask;

    /// <summary>Starts the connection; <see cref="Completion"/> tracks it to its end.</summary>
    public void Start() => _run = RunAsync();

    /// <summary>
    /// The connection's whole life in one async method (one state machine per connection, not one per layer):
    /// read and handle frames until the peer closes or the session ends, read on (discarding) until the peer closes
    /// too or the close deadline drops the socket, then tear down.
    /// </summary>
    private async Task RunAsync()
    {
        // Off the accept loop at once: the first pass (upgrade, HELLO, authentication) must not delay later accepts.
        await Task.Yield();
        bool draining = false;
        bool mayHaveMore = false;
        try
        {
            while (true)
            {
                if (!mayHaveMore)
                {
                    if (_inputStart == _inputEnd)
                    {
                        ReturnInput(); // nothing incomplete: wait holding no buffer
                    }

                    if (_epoll is not null)
                    {
                        await WaitReadableAsync().ConfigureAwait(false); // the epoll thread's next edge
                    }
                    else
                    {
                        // Completes when data (or the peer's FIN) is there, without taking any of it.
                        await Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                    }
                }

                if (!draining && Session.State == SessionState.Closed)
                {
                    draining = true; // closed from elsewhere while we waited
                }

                var free = InputSpace();
                int received = Receive(free.Span, out SocketError error);
                if (error == SocketError.WouldBlock)
                {
                    mayHaveMore = false;
                    continue;
                }

                if (error != SocketError.Success)
                {
                    throw new SocketException((int)error);
                }

                if (received == 0)
                {
                    break; // the peer closed
                }

                OnInput();
                _inputEnd += received;
                // The buffer filled up, or (epoll) the peer's FIN came with this data: the socket may hold more.
                mayHaveMore = received == free.Length || Volatile.Read(ref _hangUp) != 0;
                if (draining)
                {
                    // Read until the peer closes too, so unread input does not turn our close into a reset
                    // that could destroy the last frames in flight.
                    _inputStart = _inputEnd = 0;
                    continue;
                }

                var buffer = new ReadOnlySequence<byte>(_input!, _inputStart, _inputEnd - _inputStart);
                FrameOutcome outcome;
                while (true)
                {
                    outcome = TryHandleNext(ref buffer);
                    if (outcome == FrameOutcome.Handled)
                    {
                        continue;
                    }

                    if (outcome != FrameOutcome.Respond)
                    {
                        break;
                    }

                    // Before anything after it is handled: the WebSocket handshake's answer goes out ahead of the
                    // replies to the frames that follow the upgrade request.
                    _inputStart = _inputEnd - (int)buffer.Length;
                    await SendAsync(TakeResponse()).ConfigureAwait(false);
                    buffer = new ReadOnlySequence<byte>(_input!, _inputStart, _inputEnd - _inputStart);
                }

                _inputStart = _inputEnd - (int)buffer.Length;
                if (_inputStart == _inputEnd)
                {
                    _inputStart = _inputEnd = 0;
                }

                if (outcome == FrameOutcome.Stop)
                {
                    draining = true;
                    _inputStart = _inputEnd = 0;
                }
            }
        }
        catch (Exception ex) when (IsDisconnect(ex))
        {
        }
        catch (Exception ex)
        {
            Context.Logger.LogWarning(ex, "Read loop of {Session} failed", Session);
            Session.Close(SessionCloseKind.InternalError, "internal error");
        }

        ReturnInput();
        Session.Close(SessionCloseKind.Normal, "connection closed by peer");
        try
        {
            // The writer flushes what is queued (an ERROR, a close frame), then shuts down our sending side.
            await WhenWriterExited().WaitAsync(Context.Options.CloseTimeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsDisconnect(ex) || ex is TimeoutException)
        {
        }

        OnReadEnded();
        Session.OnTransportClosed();
        CloseSocket();
        Interlocked.Exchange(ref _closeDeadline, null)?.Dispose();
        try
        {
            await WhenWriterExited().ConfigureAwait(false); // quick now: its socket is gone
        }
        finally
        {
            Listener?.OnConnectionEnded(this);
        }
    }

    /// <summary>
    /// Session closing, from any thread: the read loop may be parked in a receive that only the peer can end, so
    /// bound the teardown: after <see cref="TransportOptions.CloseTimeout"/> the socket is dropped, which ends it.
    /// </summary>
    private void OnSessionClosing()
    {
        if (Volatile.Read(ref _socketClosed) != 0)
        {
            return;
        }

        var deadline = new Timer(static state => ((Connection)state!).CloseSocket(), this, Timeout.Infinite, Timeout.Infinite);
        if (Interlocked.CompareExchange(ref _closeDeadline, deadline, null) is not null)
        {
            deadline.Dispose();
            return;
        }

        deadline.Change(Context.Options.CloseTimeout, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Free space to receive into: rents the buffer, moves a partial frame to the front, grows it for a large one.</summary>
    private Memory<byte> InputSpace()
    {
        if (_input is null)
        {
            _input = ArrayPool<byte>.Shared.Rent(InitialReceiveBytes);
            _inputStart = _inputEnd = 0;
        }
        else if (_inputStart > 0)
        {
            _input.AsSpan(_inputStart, _inputEnd - _inputStart).CopyTo(_input);
            _inputEnd -= _inputStart;
            _inputStart = 0;
        }

        if (_inputEnd == _input.Length)
        {
            // An incomplete frame fills the buffer: the parsers reject frames over the limit from their header, so
            // a frame that still does not fit at the limit is a framing bug, not a reason to grow without end.
            int limit = MaxBufferedBytes;
            if (_input.Length >= limit)
            {
                throw new InvalidOperationException($"an incomplete frame fills the receive buffer ({_input.Length} bytes)");
            }

            byte[] larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)_input.Length * 2, limit));
            _input.AsSpan(0, _inputEnd).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_input);
            _input = larger;
        }

        return _input.AsMemory(_inputEnd);
    }

    private void ReturnInput()
    {
        if (_input is { } input)
        {
            _input = null;
            _inputStart = _inputEnd = 0;
            ArrayPool<byte>.Shared.Return(input);
        }
    }

    /// <summary>The most bytes one incomplete frame (or handshake) may need buffered.</summary>
    protected abstract int MaxBufferedBytes { get; }

    /// <summary>What <see cref="TryHandleNext"/> did with the front of the input.</summary>
    protected enum FrameOutcome : byte
    {
        /// <summary>No whole frame yet: wait for more input.</summary>
        NeedMoreData,
        /// <summary>A frame was handled; there may be more.</summary>
        Handled,
        /// <summary>The session is closing: stop reading.</summary>
        Stop,
        /// <summary>Send <see cref="TakeResponse"/> before handling anything else, then go on.</summary>
        Respond,
    }

    /// <summary>Parses and handles one frame from the front of <paramref name="buffer"/> (advancing it).</summary>
    protected abstract FrameOutcome TryHandleNext(ref ReadOnlySequence<byte> buffer);

    /// <summary>The bytes a <see cref="FrameOutcome.Respond"/> asked to send (the WebSocket handshake's answer).</summary>
    protected virtual ReadOnlyMemory<byte> TakeResponse() => ReadOnlyMemory<byte>.Empty;

    /// <summary>The read loop has ended: release what the framing holds.</summary>
    protected virtual void OnReadEnded()
    {
    }

    /// <summary>Size of the transport header in front of an envelope of <paramref name="bodyLength"/> bytes.</summary>
    protected abstract int HeaderSize(int bodyLength);

    /// <summary>Writes the transport header for an envelope of <paramref name="bodyLength"/> bytes.</summary>
    protected abstract void WriteHeader(Span<byte> destination, int bodyLength);

    /// <summary>Transport control bytes to send before queued frames (a WebSocket pong); returns bytes written.</summary>
    protected virtual int WritePending(Span<byte> destination) => 0;

    /// <summary>Last bytes to send when the session has closed (a WebSocket close frame); returns bytes written.</summary>
    protected virtual int WriteClosing(Span<byte> destination, SessionClose reason) => 0;

    /// <summary>Hands a whole envelope to the session; copies it first when it spans segments.</summary>
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

    /// <summary>
    /// Outbox wake-up (any thread): runs the writer on the thread pool unless it is running already, in which case
    /// it makes one more pass. Nothing waits between wake-ups, so an idle connection keeps no writer parked.
    /// </summary>
    public void Wake()
    {
        // The caller's preceding store (a queued frame, completion) must be visible before we read the state:
        // otherwise a writer ending its pass could miss it and go idle with the frame queued (lost wake-up).
        Interlocked.MemoryBarrier();
        while (true)
        {
            switch (Volatile.Read(ref _writerRun))
            {
                case WriterIdle:
                    if (Interlocked.CompareExchange(ref _writerRun, WriterRunning, WriterIdle) == WriterIdle)
                    {
                        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
                        return;
                    }

                    break;
                case WriterRunning:
                    if (Interlocked.CompareExchange(ref _writerRun, WriterRunAgain, WriterRunning) == WriterRunning)
                    {
                        return;
                    }

                    break;
                default:
                    return; // already asked to run again, or finished for good
            }
        }
    }

    void IThreadPoolWorkItem.Execute() => _ = WriteAsync();

    /// <summary>
    /// The writer: passes over the outbox until a pass ends with no wake-up since it started. Completes
    /// synchronously (no allocation) when every send is taken by the kernel at once; only a send that must wait for
    /// the socket makes it go async. Ends for good once the session has closed and the closing bytes are out.
    /// </summary>
    private async Task WriteAsync()
    {
        var outbox = Session.Outbox;
        try
        {
            while (true)
            {
                if (TryClaimForWriter())
                {
                    await SendCarryAsync().ConfigureAwait(false);
                    await DrainAsync(outbox).ConfigureAwait(false);
                    if (outbox.IsCompleted)
                    {
                        // Closing, and the writer keeps the send right from here on (the close deadline, armed when
                        // the session closed, bounds how long a peer that never reads can hold this up).
                        if (Session.CloseReason?.Kind == SessionCloseKind.SlowConsumer)
                        {
                            outbox.DiscardAll(); // its backlog is why it is closed: do not try to push it out first
                        }

                        await DrainAsync(outbox).ConfigureAwait(false);
                        await SendClosingAsync().ConfigureAwait(false);
                        break;
                    }

                    Release(outbox);
                }

                // Not claimed: a shard thread is writing inline, and wakes us again when it lets go.
                if (Interlocked.CompareExchange(ref _writerRun, WriterIdle, WriterRunning) == WriterRunning)
                {
                    return; // no wake-up during the pass: whoever queues next starts a new one
                }

                Volatile.Write(ref _writerRun, WriterRunning); // woken during the pass: one more
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

        // The writer holds the send right on every way here: nobody else sends from now on.
        Volatile.Write(ref _writerRun, WriterExited);
        Volatile.Write(ref _sender, SenderClosed);
        DiscardCarry();
        outbox.DiscardAll();

        // Nothing more will be sent: half-close. The peer answers with its own FIN, which ends the read loop.
        ShutdownSend();
        Interlocked.Exchange(ref _writerExit, s_writerExited)?.TrySetResult();
    }

    /// <summary>Teardown: completes when the writer has finished for good (it has been woken by the session's close).</summary>
    private Task WhenWriterExited()
    {
        if (Volatile.Read(ref _writerExit) is { } known)
        {
            return known == s_writerExited ? Task.CompletedTask : known.Task;
        }

        var exit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var existing = Interlocked.CompareExchange(ref _writerExit, exit, null);
        return existing is null ? exit.Task : existing == s_writerExited ? Task.CompletedTask : existing.Task;
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
                sent = SendNow(buffer.AsSpan(0, used), out var error);
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
    /// Sends all of <paramref name="bytes"/>. It first tries a plain non-blocking send, which usually takes everything: no async operation, and no send event-args cached on the
    /// socket for its whole life (~300 B per connection that only ever got small writes). Only what the kernel did
    /// not take goes through <see cref="Socket.SendAsync(ReadOnlyMemory{byte}, SocketFlags, CancellationToken)"/>.
    /// </summary>
    protected ValueTask<int> SendAsync(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return new ValueTask<int>(0);
        }

        int sent = SendNow(bytes.Span, out SocketError error);
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

    /// <summary>One non-blocking receive: on the descriptor (epoll engine) or through the non-blocking socket.</summary>
    private int Receive(Span<byte> buffer, out SocketError error) =>
        _handle is { } handle ? SocketNative.Receive(handle, buffer, out error) : Socket.Receive(buffer, SocketFlags.None, out error);

    /// <summary>One non-blocking send: what the kernel takes now (WouldBlock when the socket buffer is full).</summary>
    private int SendNow(ReadOnlySpan<byte> bytes, out SocketError error)
    {
        int sent = _handle is { } handle ? SocketNative.Send(handle, bytes, out error) : Socket.Send(bytes, SocketFlags.None, out error);
        return sent < 0 ? 0 : sent;
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
            Session.Close(kind, reason); // arms the close deadline
            return;
        }

        Session.Close(kind, reason);
        CloseSocket();
    }

    private void CloseSocket()
    {
        if (Interlocked.Exchange(ref _socketClosed, 1) == 0)
        {
            // Out of the epoll set before the descriptor number can be reused (the token's generation guards the rest).
            _epoll?.Unregister(this, _fd);
            try
            {
                Socket.Dispose();
            }
            catch (Exception ex) when (IsDisconnect(ex))
            {
            }

            if (_epoll is not null)
            {
                OnReadable(EpollNative.EPOLLHUP); // a parked read loop wakes, and its receive finds the socket gone
            }
        }
    }

    protected static bool IsDisconnect(Exception ex) =>
        ex is SocketException or ObjectDisposedException or IOException or OperationCanceledException;
}
