namespace FastRelay.Core.Sessions;

/// <summary>
/// The transport side of an <see cref="Outbox"/> that can write queued frames from the thread that queued them
/// (a shard thread, at the end of its batch) instead of waking its writer through the thread pool.
/// </summary>
public interface IOutboxWriter
{
    /// <summary>
    /// Writes what is queued without blocking, or makes sure the connection's own writer will. Called on a shard
    /// thread: must never wait on the socket.
    /// </summary>
    void WriteInline();
}
