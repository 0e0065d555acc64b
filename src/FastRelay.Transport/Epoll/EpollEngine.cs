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
        var loop = _loops[(int)((uint)Interlocked.Increment(ref _next) % (uint)_loops.Length)];
        loop.Register(target, fd);
        return loop;
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
