using FastRelay.Core;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport;

/// <summary>What every connection shares: the engine, the transport options, a logger and the epoll engine (null: .NET's sockets).</summary>
internal sealed record TransportContext(RelayEngine Engine, TransportOptions Options, ILogger Logger)
{
    public FastRelay.Transport.Epoll.EpollEngine? Epoll { get; init; }
}
