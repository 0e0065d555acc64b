namespace FastRelay.Transport;

/// <summary>How connections learn that their socket has data (see <see cref="TransportOptions.IoEngine"/>).</summary>
public enum IoEngine : byte
{
    /// <summary><see cref="Epoll"/> on Linux, <see cref="Sockets"/> elsewhere.</summary>
    Auto,

    /// <summary>Our own edge-triggered epoll threads signal readiness; no async receive is ever issued (Linux only).</summary>
    Epoll,

    /// <summary>A parked zero-byte <c>Socket.ReceiveAsync</c> per connection (.NET's socket engine).</summary>
    Sockets,
}
