using System.Threading.Tasks.Sources;

namespace FastRelay.Core.Threading;

/// <summary>
/// Auto-reset signal with one waiter, awaitable without allocation. <see cref="Set"/> may be called from any
/// thread (a shard thread, typically); the waiter's continuation runs on the thread pool, never inline on the setter.
/// </summary>
public sealed class AsyncSignal : IValueTaskSource
{
    private const int Idle = 0;
    private const int Waiting = 1;
    private const int Signaled = 2;

    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;

    /// <summary>Completes when <see cref="Set"/> has been called since the previous wait completed. One waiter at a time.</summary>
    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signaled) == Signaled)
        {
            return ValueTask.CompletedTask;
        }

        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Idle)
        {
            return new ValueTask(this, _core.Version);
        }

        // Set() ran between the two exchanges: consume it.
        Volatile.Write(ref _state, Idle);
        return ValueTask.CompletedTask;
    }

    /// <summary>Wakes the waiter, or lets the next wait complete at once.</summary>
    public void Set()
    {
        // The caller's preceding store (a queued frame) must be visible before we read the state: otherwise a
        // stale "Signaled" could be read after the waiter consumed it and found the queue empty (lost wake-up).
        Interlocked.MemoryBarrier();
        while (true)
        {
            int state = Volatile.Read(ref _state);
            switch (state)
            {
                case Signaled:
                    return;
                case Idle:
                    if (Interlocked.CompareExchange(ref _state, Signaled, Idle) == Idle)
                    {
                        return;
                    }

                    break;
                default:
                    if (Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting)
                    {
                        _core.SetResult(true);
                        return;
                    }

                    break;
            }
        }
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
