using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport.Epoll;

/// <summary>
/// One I/O thread with its own edge-triggered epoll instance. A registration's user data is a token, not a pointer:
/// the slot in this loop's table (low 32 bits) and the slot's generation (high 32 bits), so no GC handle is kept per
/// socket and a late event for a freed slot, or for a descriptor number the kernel has reused, reaches nobody.
/// </summary>
internal sealed unsafe class EpollLoop : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeToken = ulong.MaxValue;
    private const uint Interest = EpollNative.EPOLLIN | EpollNative.EPOLLRDHUP | EpollNative.EPOLLET;

    private readonly object _lock = new();
    private readonly ILogger _logger;
    private readonly int _epfd;
    private readonly int _wakeFd;
    private readonly Thread _thread;
    private IReadinessTarget?[] _slots = new IReadinessTarget?[64];
    private uint[] _generations = new uint[64];
    private int[] _free = new int[64];
    private int _freeCount;
    private int _used;
    private int _registered;
    private volatile bool _stopping;
    private volatile bool _faulted;
    private int _disposed;

    public EpollLoop(int index, ILogger logger)
    {
        _logger = logger;
        _epfd = EpollNative.EpollCreate1(EpollNative.EPOLL_CLOEXEC);
        if (_epfd < 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        _wakeFd = EpollNative.EventFd(0, EpollNative.EFD_CLOEXEC | EpollNative.EFD_NONBLOCK);
        int error = _wakeFd < 0 ? Marshal.GetLastPInvokeError() : EpollNative.Control(_epfd, EpollNative.EPOLL_CTL_ADD, _wakeFd, EpollNative.EPOLLIN, WakeToken);
        if (error != 0)
        {
            if (_wakeFd >= 0)
            {
                EpollNative.Close(_wakeFd);
            }

            EpollNative.Close(_epfd);
            throw new SocketException(error);
        }

        _thread = new Thread(Run) { IsBackground = true, Name = $"fastrelay-epoll-{index}" };
        _thread.UnsafeStart();
    }

    /// <summary>The thread stopped on an error: its sockets were woken to end, and it takes no more.</summary>
    public bool Faulted => _faulted;

    /// <summary>Sockets registered now (tests: slots must not leak).</summary>
    public int RegisteredCount => Volatile.Read(ref _registered);

    /// <summary>Watches <paramref name="fd"/> for input and hang-up; events go to <paramref name="target"/>.</summary>
    public void Register(IReadinessTarget target, int fd)
    {
        ulong token;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (_faulted)
            {
                throw new SocketException((int)SocketError.OperationAborted);
            }

            int slot;
            if (_freeCount > 0)
            {
                slot = _free[--_freeCount];
            }
            else
            {
                if (_used == _slots.Length)
                {
                    Grow();
                }

                slot = _used++;
            }

            uint generation = ++_generations[slot];
            if (generation == 0)
            {
                generation = _generations[slot] = 1; // wrapped; the wake token stays unique (its slot is never used)
            }

            token = ((ulong)generation << 32) | (uint)slot;
            target.EpollToken = token;
            _slots[slot] = target; // before the descriptor is added, so its first event finds it
            _registered++;
        }

        int error = EpollNative.Control(_epfd, EpollNative.EPOLL_CTL_ADD, fd, Interest, token);
        if (error != 0)
        {
            Free(target, token);
            throw new SocketException(error);
        }
    }

    /// <summary>Stops watching <paramref name="fd"/> (call before closing it) and frees its slot.</summary>
    public void Unregister(IReadinessTarget target, int fd)
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _ = EpollNative.Control(_epfd, EpollNative.EPOLL_CTL_DEL, fd, 0, 0); // ENOENT/EBADF: already gone
        }

        Free(target, target.EpollToken);
    }

    private void Free(IReadinessTarget target, ulong token)
    {
        int slot = (int)(uint)token;
        lock (_lock)
        {
            if (slot < _used && ReferenceEquals(_slots[slot], target))
            {
                _slots[slot] = null;
                _free[_freeCount++] = slot;
                _registered--;
            }
        }
    }

    private void Grow()
    {
        int size = _slots.Length * 2;
        var slots = new IReadinessTarget?[size];
        Array.Copy(_slots, slots, _slots.Length);
        var generations = new uint[size];
        Array.Copy(_generations, generations, _generations.Length);
        var free = new int[size];
        Array.Copy(_free, free, _freeCount);
        _generations = generations;
        _free = free;
        Volatile.Write(ref _slots, slots);
    }

    private void Run()
    {
        int size = EpollNative.EventSize;
        int offset = EpollNative.DataOffset;
        byte* events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * size));
        try
        {
            while (!_stopping)
            {
                int n = EpollNative.EpollWait(_epfd, events, MaxEvents, -1);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == EpollNative.EINTR)
                    {
                        continue;
                    }

                    _logger.LogError("epoll_wait failed with errno {Errno}; the I/O thread stops and its connections end", errno);
                    Fault();
                    return;
                }

                for (int i = 0; i < n; i++)
                {
                    byte* ev = events + (i * size);
                    ulong token = Unsafe.ReadUnaligned<ulong>(ev + offset);
                    if (token != WakeToken)
                    {
                        Dispatch(token, Unsafe.ReadUnaligned<uint>(ev));
                    }
                }
            }
        }
        finally
        {
            NativeMemory.Free(events);
        }
    }

    /// <summary>
    /// The thread cannot wait any more (a program error: EBADF, EINVAL, EFAULT): no edge would reach its connections
    /// again, so each is woken with an error and ends (its receive finds out), and new sockets go to other loops.
    /// </summary>
    private void Fault()
    {
        IReadinessTarget?[] targets;
        lock (_lock)
        {
            _faulted = true;
            targets = (IReadinessTarget?[])_slots.Clone();
        }

        foreach (var target in targets)
        {
            try
            {
                target?.OnReadable(EpollNative.EPOLLERR);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Readiness callback failed");
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Dispatch(ulong token, uint events)
    {
        int slot = (int)(uint)token;
        var slots = Volatile.Read(ref _slots);
        if ((uint)slot < (uint)slots.Length && Volatile.Read(ref slots[slot]) is { } target && target.EpollToken == token)
        {
            try
            {
                target.OnReadable(events);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Readiness callback failed");
            }
        }
    }

    /// <summary>Stops the thread and waits for it, then closes the epoll instance.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed != 0)
            {
                return;
            }

            _disposed = 1;
        }

        _stopping = true;
        ulong one = 1;
        _ = EpollNative.Write(_wakeFd, (byte*)&one, sizeof(ulong));
        _thread.Join();
        EpollNative.Close(_wakeFd);
        EpollNative.Close(_epfd);
    }
}
