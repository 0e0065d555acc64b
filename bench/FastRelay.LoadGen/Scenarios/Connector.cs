using System.Net;
using FastRelay.LoadGen.Clients;
using FastRelay.LoadGen.Targets;
using FastRelay.LoadGen.Wire;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>Opens simulated clients with bounded concurrency, optionally spread over several 127.0.0.x source addresses.</summary>
internal sealed class Connector(TargetProcess target, WireProtocol wire, int sourceIps, int bufferBytes)
{
    /// <summary>TCP connect plus the target's connection setup (upgrade, HELLO/WELCOME or PING/PONG).</summary>
    public async Task<ClientConnection> OpenAsync(int index, CancellationToken cancellationToken, int kernelReceiveBufferBytes = 0)
    {
        IPAddress? source = sourceIps > 1 ? new IPAddress(new byte[] { 127, 0, 0, (byte)(1 + index % sourceIps) }) : null;
        var connection = await ClientConnection.ConnectAsync(target.EndPoint, source, wire, bufferBytes, cancellationToken, kernelReceiveBufferBytes).ConfigureAwait(false);
        try
        {
            await wire.OpenAsync(connection, index, cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="open"/> for indexes [from, to) with at most <paramref name="parallelism"/> at a time.</summary>
    public static Task ForEachAsync(int from, int to, int parallelism, CancellationToken cancellationToken, Func<int, CancellationToken, ValueTask> open) =>
        Parallel.ForEachAsync(
            Enumerable.Range(from, to - from),
            new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken },
            (i, ct) => open(i, ct));
}
