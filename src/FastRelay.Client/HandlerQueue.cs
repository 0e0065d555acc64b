using System.Runtime.ExceptionServices;
using System.Threading.Channels;

namespace FastRelay.Client;

/// <summary>
/// Runs the handlers of the client's and its subscriptions' events one at a time, in the order the events happened, on
/// a background task: the receive loop never waits for application code, and a join is never handled after the leave
/// that followed it.
/// </summary>
internal sealed class HandlerQueue
{
    private readonly Channel<Action> _queue = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });

    public HandlerQueue()
    {
        _ = Task.Run(RunAsync);
    }

    public void Raise<T>(EventHandler<T>? handler, object sender, T args)
    {
        if (handler is not null)
        {
            _queue.Writer.TryWrite(() => handler(sender, args));
        }
    }

    /// <summary>Handlers already queued still run; later events are not raised.</summary>
    public void Complete() => _queue.Writer.TryComplete();

    private async Task RunAsync()
    {
        await foreach (var call in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                call();
            }
            catch (Exception ex)
            {
                // A throwing handler is an application bug: it surfaces as an unhandled exception, as it would if the
                // event were raised on the thread pool directly, and the handlers after it still run.
                ThreadPool.UnsafeQueueUserWorkItem(static e => ExceptionDispatchInfo.Throw(e), ex, preferLocal: false);
            }
        }
    }
}
