using System.Collections.Concurrent;
using FastRelay.Core.Sessions;
using FastRelay.Transport.Connections;

namespace FastRelay.Transport;

/// <summary>
/// The handshake deadline of every new connection, without a timer per connection: the timeout is the same for all,
/// so accept order is deadline order, and one sweep looks only at the front of a FIFO queue. The sweep runs at a
/// quarter of the timeout (10 ms to 1 s), so a connection is aborted between the timeout and a quarter past it.
/// </summary>
internal sealed class HandshakeDeadlines
{
    private readonly ConcurrentQueue<(Connection Connection, long DeadlineMs)> _pending = new();
    private readonly long _timeoutMs;

    public HandshakeDeadlines(TimeSpan timeout)
    {
        _timeoutMs = Math.Max(1, (long)Math.Ceiling(timeout.TotalMilliseconds));
        Period = TimeSpan.FromMilliseconds(Math.Clamp(_timeoutMs / 4, 10, 1000));
    }

    /// <summary>How often <see cref="Sweep"/> should run.</summary>
    public TimeSpan Period { get; }

    /// <summary>A connection has been accepted: its upgrade and HELLO must be done within the timeout from now.</summary>
    public void Add(Connection connection) => _pending.Enqueue((connection, Environment.TickCount64 + _timeoutMs));

    /// <summary>Aborts every connection past its deadline that is still waiting for HELLO; forgets the others.</summary>
    public void Sweep(long nowMs)
    {
        while (_pending.TryPeek(out var head) && head.DeadlineMs <= nowMs)
        {
            if (!_pending.TryDequeue(out head))
            {
                break;
            }

            // Only a session still waiting for HELLO, decided in one step against a HELLO arriving now.
            head.Connection.Session.TryExpireHandshake("handshake timeout: no HELLO");
        }
    }
}
