using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FastRelay.Transport.Epoll;

/// <summary>
/// Non-blocking <c>recv</c>/<c>send</c> straight on a socket's descriptor (Linux), for the epoll engine. Going through
/// <see cref="Socket.Receive(Span{byte}, SocketFlags, out SocketError)"/> would need the socket in non-blocking mode,
/// and switching .NET's socket to it creates its async context (context, queues, locks: ~220 B per connection) that
/// a connection the epoll engine watches never uses. <c>MSG_DONTWAIT</c> makes each call non-blocking by itself.
/// The handle is referenced for the call, so a concurrent close cannot hand its number to another socket mid-call.
/// </summary>
internal static unsafe partial class SocketNative
{
    private const int MSG_DONTWAIT = 0x40;
    private const int MSG_NOSIGNAL = 0x4000;

    private const int EINTR = 4;
    private const int EBADF = 9;
    private const int EAGAIN = 11;
    private const int EPIPE = 32;
    private const int ECONNABORTED = 103;
    private const int ECONNRESET = 104;
    private const int ENOTCONN = 107;
    private const int ETIMEDOUT = 110;

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint SendNative(int fd, byte* buffer, nuint length, int flags);

    /// <summary>Bytes received (0: the peer closed); <see cref="SocketError.WouldBlock"/> when nothing is there.</summary>
    public static int Receive(SafeSocketHandle handle, Span<byte> buffer, out SocketError error) =>
        Transfer(handle, buffer, send: false, out error);

    /// <summary>Bytes the kernel took (0 with <see cref="SocketError.WouldBlock"/> when the socket buffer is full).</summary>
    public static int Send(SafeSocketHandle handle, ReadOnlySpan<byte> buffer, out SocketError error) =>
        Transfer(handle, MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(buffer), buffer.Length), send: true, out error); // only read

    private static int Transfer(SafeSocketHandle handle, Span<byte> buffer, bool send, out SocketError error)
    {
        bool referenced = false;
        try
        {
            handle.DangerousAddRef(ref referenced);
            int fd = (int)handle.DangerousGetHandle();
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    nint n = send
                        ? SendNative(fd, p, (nuint)buffer.Length, MSG_DONTWAIT | MSG_NOSIGNAL)
                        : Recv(fd, p, (nuint)buffer.Length, MSG_DONTWAIT);
                    if (n >= 0)
                    {
                        error = SocketError.Success;
                        return (int)n;
                    }

                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != EINTR)
                    {
                        error = ToSocketError(errno);
                        return 0;
                    }
                }
            }
        }
        finally
        {
            if (referenced)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static SocketError ToSocketError(int errno) => errno switch
    {
        EAGAIN => SocketError.WouldBlock,
        ECONNRESET => SocketError.ConnectionReset,
        EPIPE => SocketError.Shutdown,
        ECONNABORTED => SocketError.ConnectionAborted,
        ENOTCONN => SocketError.NotConnected,
        ETIMEDOUT => SocketError.TimedOut,
        EBADF => SocketError.OperationAborted,
        _ => SocketError.SocketError,
    };
}
