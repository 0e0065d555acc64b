using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>
/// Base of the typed requests: the request is its own TaskCompletionSource, so a request costs one object plus its task.
/// Continuations run asynchronously: user code never runs on the receive loop.
/// </summary>
internal abstract class PendingRequest<T> : TaskCompletionSource<T>, IPendingRequest
{
    private CancellationTokenRegistration _cancellation;

    protected PendingRequest(ulong requestId)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        RequestId = requestId;
    }

    public ulong RequestId { get; }

    public abstract string Describe();

    /// <summary>The reply type that means success.</summary>
    protected abstract FrameType SuccessReply { get; }

    public void OnReply(in Envelope reply)
    {
        _cancellation.Unregister();
        if (reply.Type is FrameType.Error or FrameType.Backoff)
        {
            OnRefused(MapError(in reply));
        }
        else if (!IsSuccessReply(reply.Type))
        {
            OnRefused(new FastRelayException(ErrorCode.BadFrame,
                $"the server answered request {RequestId} with {reply.Type}, expected {SuccessReply}"));
        }
        else
        {
            OnSuccess(in reply);
        }
    }

    /// <summary>The exception for an ERROR or BACKOFF reply (a request may map some codes to its own exception types).</summary>
    protected virtual FastRelayException MapError(in Envelope reply) => ServerErrors.FromReply(reply);

    /// <summary>True for every reply type that means success (a SUB may be answered ACK, RECOVERED or NOT_RECOVERED).</summary>
    protected virtual bool IsSuccessReply(FrameType type) => type == SuccessReply;

    /// <summary>Completes the task from the success reply (runs on the receive loop).</summary>
    protected abstract void OnSuccess(in Envelope reply);

    /// <summary>The server refused the request (ERROR, BACKOFF, or an unexpected reply type); runs on the receive loop.</summary>
    protected virtual void OnRefused(FastRelayException error) => TrySetException(error);

    public virtual void Fail(Exception error)
    {
        _cancellation.Unregister();
        TrySetException(error);
    }

    /// <summary>Cancels the wait (not the request: a sent request may still take effect on the server).</summary>
    public void CancelWith(PendingRequests table, CancellationToken ct)
    {
        if (!ct.CanBeCanceled)
        {
            return;
        }

        _cancellation = ct.UnsafeRegister(static (state, token) =>
        {
            var (request, owner) = ((PendingRequest<T>, PendingRequests))state!;
            owner.Remove(request.RequestId);
            request.TrySetCanceled(token);
        }, (this, table));
    }
}
