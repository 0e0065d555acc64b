using FastRelay.Core;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport;

/// <summary>What every connection shares: the engine, the transport options and a logger.</summary>
internal sealed record TransportContext(RelayEngine Engine, TransportOptions Options, ILogger Logger);
