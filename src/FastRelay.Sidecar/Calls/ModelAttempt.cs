using FastRelay.Sidecar.Models;

namespace FastRelay.Sidecar.Calls;

/// <summary>One attempt on one target: reads the adapter's stream chunk by chunk and turns every failure into a step.</summary>
/// <remarks>
/// Owns the per-attempt timer (first-token timeout, then idle timeout between tokens). The timer runs only while
/// the attempt waits on the model: it is disarmed when a chunk arrives, so a consumer that takes its time with a
/// partial is never mistaken for a stalled model. Only cancellation of the caller's own token escapes as an exception.
/// </remarks>
internal sealed class ModelAttempt : IAsyncDisposable
{
    private readonly ModelTarget _target;
    private readonly CancellationToken _callerToken;
    private readonly CancellationToken _deadlineToken;
    private readonly CancellationTokenSource _idle;
    private readonly CancellationTokenSource _linked;
    private readonly ModelRequest _request;
    private IAsyncEnumerator<ModelChunk>? _chunks;

    public ModelAttempt(ModelTarget target, ModelRequest request, CancellationToken callerToken, CancellationToken deadlineToken, TimeProvider time)
    {
        _target = target;
        _callerToken = callerToken;
        _deadlineToken = deadlineToken;
        _idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(callerToken, deadlineToken, _idle.Token);
        _request = request;
    }

    /// <summary>True once a non-empty delta has come back: from then on, a failure ends the call instead of retrying.</summary>
    public bool Streamed { get; private set; }

    public async ValueTask<AttemptStep> NextAsync()
    {
        TimeSpan? wait = Streamed ? _target.Policy.IdleTimeout : _target.Policy.FirstTokenTimeout;
        if (wait is { } w)
        {
            _idle.CancelAfter(w);
        }

        try
        {
            _chunks ??= _target.Adapter.StreamAsync(_request, _linked.Token).GetAsyncEnumerator(_linked.Token);
            if (!await _chunks.MoveNextAsync().ConfigureAwait(false))
            {
                return AttemptStep.Failed(DegradedReason.Error, ModelFailureKind.Transient, "the model's stream ended without a final chunk");
            }
        }
        catch (OperationCanceledException) when (_callerToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (_callerToken.IsCancellationRequested)
        {
            // Aborting a socket read may surface as an I/O error rather than a cancellation: it is still the caller's.
            throw new OperationCanceledException("the model call was cancelled", ex, _callerToken);
        }
        catch (Exception) when (_deadlineToken.IsCancellationRequested)
        {
            return AttemptStep.Failed(DegradedReason.Timeout, ModelFailureKind.Transient, $"timed out after {Format(_target.Policy.Timeout)}");
        }
        catch (Exception) when (_idle.IsCancellationRequested)
        {
            return Streamed
                ? AttemptStep.Failed(DegradedReason.Stalled, ModelFailureKind.Transient, $"stalled: no token for {Format(_target.Policy.IdleTimeout!.Value)}")
                : AttemptStep.Failed(DegradedReason.Timeout, ModelFailureKind.Transient, $"no first token within {Format(_target.Policy.FirstTokenTimeout!.Value)}");
        }
        catch (ModelException ex)
        {
            return AttemptStep.Failed(DegradedReason.Error, ex.Kind, ex.Message, ex.RetryAfter);
        }
        catch (Exception ex)
        {
            // A faulty adapter must not take the worker down: the call ends like any permanent failure.
            return AttemptStep.Failed(DegradedReason.Error, ModelFailureKind.Permanent, $"{ex.GetType().Name}: {ex.Message}");
        }

        if (wait is not null)
        {
            _idle.CancelAfter(Timeout.InfiniteTimeSpan);
        }

        ModelChunk chunk = _chunks!.Current;
        if (!string.IsNullOrEmpty(chunk.Text))
        {
            Streamed = true;
        }

        return AttemptStep.Chunk(chunk);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_chunks is not null)
            {
                await _chunks.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Disposing an abandoned stream (a timed-out HTTP response) may throw; the attempt's outcome is already known.
        }

        _linked.Dispose();
        _idle.Dispose();
    }

    internal static string Format(TimeSpan t) => t.TotalSeconds >= 1 ? $"{t.TotalSeconds:0.###} s" : $"{t.TotalMilliseconds:0} ms";
}

/// <summary>What one read of an attempt produced: a chunk, or a failure with its classification.</summary>
internal readonly record struct AttemptStep(ModelChunk Value, DegradedReason Reason, ModelFailureKind Kind, string? Error, TimeSpan? RetryAfter)
{
    public bool IsFailure => Error is not null;

    public static AttemptStep Chunk(ModelChunk chunk) => new(chunk, DegradedReason.None, ModelFailureKind.Transient, null, null);

    public static AttemptStep Failed(DegradedReason reason, ModelFailureKind kind, string error, TimeSpan? retryAfter = null) =>
        new(default, reason, kind, error, retryAfter);
}
