namespace FastRelay.Transport.Epoll;

/// <summary>What an epoll thread wakes: a connection whose socket may have become readable (or hung up).</summary>
internal interface IReadinessTarget
{
    /// <summary>The registration's token (slot index and generation), set by the loop that registered it.</summary>
    ulong EpollToken { get; set; }

    /// <summary>Called on the epoll thread for each edge with its event bits: must not block and must not lose the edge.</summary>
    void OnReadable(uint events);
}
