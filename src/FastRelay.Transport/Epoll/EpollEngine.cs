using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace FastRelay.Transport.Epoll;

/// <summary>
/// The readiness engine of one server: a few epoll threads (one per core, at most four), each watching a share of
/// the connections. A thread only turns edges into wake-ups; receiving and parsing stay on the thread pool.
/// </summary>
internal sealed class EpollEngine : IDisposable
{
    private readonly EpollLoop[] _loops;
    private int _next;

    public EpollEngine(ILogger logger)
    {
        int count = Math.Clamp(Environment.ProcessorCount, 1, 4);
        _loops = new EpollLoop[count];
        try
        {
            for (int i = 0; i < count; i++)
            {
                _loops[i] = new EpollLoop(i, logger);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Sockets registered now, over all threads.</summary>
    public int RegisteredCount => _loops.Sum(l => l?.RegisteredCount ?? 0);

    /// <summary>Registers a socket on the next loop (round robin) and returns the loop, which must unregister it.</summary>
    public EpollLoop Register(IReadinessTarget target, int fd)
    {
        int start = Interlocked.Increment(ref _next);
        for (int i = 0; i < _loops.Length; i++)
        {
            var loop = _loops[(int)((uint)(start + i) % (uint)_loops.Length)];
            if (!loop.Faulted)
            {
                loop.Register(target, fd);
                return loop;
            }
        }

        throw new SocketException((int)SocketError.OperationAborted); // every I/O thread has failed
    }

    /// <summary>Stops and joins every I/O thread.</summary>
    public void Dispose()
    {
        foreach (var loop in _loops)
        {
            loop?.Dispose();
        }
    }
}
