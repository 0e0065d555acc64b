namespace FastRelay.Core.Sessions;

/// <summary>
/// The transport side of an <see cref="Outbox"/>: its writer, woken when frames are queued, and able to write them
/// from the thread that queued them (a shard thread, at the end of its batch) instead of through the thread pool.
/// </summary>
public interface IOutboxWriter
{
    /// <summary>
    /// Writes what is queued without blocking, or makes sure the connection's own writer will. Called on a shard
    /// thread: must never wait on the socket.
    /// </summary>
    void WriteInline();

    /// <summary>
    /// Makes sure the writer runs and looks at the outbox again: frames were queued, the outbox completed, or the
    /// transport has control bytes to send. Any thread; must never wait on the socket.
    /// </summary>
    void Wake();
}
