using System.Runtime.InteropServices;

namespace FastRelay.Transport.Epoll;

/// <summary>The few libc calls the epoll engine needs (Linux; blittable arguments only, so AOT-safe).</summary>
internal static unsafe partial class EpollNative
{
    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;

    public const uint EPOLLIN = 0x001;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLET = 1u << 31;

    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    public const int EINTR = 4;

    /// <summary>
    /// <c>struct epoll_event</c> is packed on x86-64 (12 bytes, data at offset 4; 32-bit x86 aligns a u64 to 4, the
    /// same layout) and naturally aligned elsewhere
    /// (16 bytes, data at offset 8).
    /// </summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86 ? 12 : 16;

    public static readonly int DataOffset = RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86 ? 4 : 8;

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate1(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epfd, int op, int fd, byte* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    /// <summary>Adds or removes <paramref name="fd"/>; returns 0 or errno.</summary>
    public static int Control(int epfd, int op, int fd, uint events, ulong data)
    {
        byte* ev = stackalloc byte[16];
        new Span<byte>(ev, 16).Clear();
        *(uint*)ev = events;
        *(ulong*)(ev + DataOffset) = data; // unaligned on x86-64, which is fine there
        return EpollCtl(epfd, op, fd, ev) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }
}
