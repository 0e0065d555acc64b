using System.Runtime.CompilerServices;
using System.Text;
using FastRelay.Sidecar.Models;

namespace FastRelay.Sidecar.Calls;

/// <summary>Calls a chain of model targets with deadlines, retries and fallbacks, and always ends with one result.</summary>
/// <remarks>
/// For each target in turn (the primary, then its fallbacks): attempts run under the target's hard timeout; a
/// transient failure before the first token is retried after a jittered exponential backoff while the deadline
/// leaves room for it; a permanent failure, spent retries or the deadline move on to the next target. Once a token
/// has been streamed the call is committed to that target: any failure (error, stall, timeout) ends the call with
/// the text so far, degraded, because a retry or a fallback would stream a second reply after the first one. When
/// every target failed before its first token, the result is degraded with empty text.
/// <para>The stream yields <see cref="ModelPartial"/>s, then exactly one <see cref="ModelCallResult"/>. Nothing
/// escapes but <see cref="OperationCanceledException"/> when the caller's own token is cancelled (shutdown: the job
/// is left to be redelivered, not finished). Reading slowly is backpressure: the model's stream is not read ahead.</para>
/// </remarks>
public sealed class ResilientModelCaller
{
    private readonly ModelTarget[] _chain;
    private readonly TimeProvider _time;
    private readonly Random _random;

    /// <param name="chain">The primary target first, then its fallbacks in order.</param>
    /// <param name="random">Backoff jitter source (tests pass a seeded one); calls share it under a lock.</param>
    public ResilientModelCaller(IReadOnlyList<ModelTarget> chain, TimeProvider? time = null, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(chain);
        if (chain.Count == 0)
        {
            throw new ArgumentException("a model call needs at least one target", nameof(chain));
        }

        foreach (ModelTarget target in chain)
        {
            target.Policy.Validate();
        }

        _chain = [.. chain];
        _time = time ?? TimeProvider.System;
        _random = random ?? Random.Shared;
    }

    public IReadOnlyList<ModelTarget> Chain => _chain;

    /// <summary>Renders <paramref name="input"/> into each target's prompt and streams the reply.</summary>
    public async IAsyncEnumerable<ModelCallUpdate> CallAsync(string input, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var text = new StringBuilder();
        int partials = 0;
        int attempts = 0;
        string lastModel = _chain[0].Name;
        AttemptStep lastFailure = default;

        foreach (ModelTarget target in _chain)
        {
            ct.ThrowIfCancellationRequested();
            lastModel = target.Name;
            ModelRequest request = target.Prompt.Render(input);
            using var deadline = new CancellationTokenSource(target.Policy.Timeout, _time);
            long deadlineAt = _time.GetTimestamp() + (long)(target.Policy.Timeout.TotalSeconds * _time.TimestampFrequency);

            for (int retry = 0; ; retry++)
            {
                attempts++;
                AttemptStep failure;
                ModelAttempt attempt = new(target, request, ct, deadline.Token, _time);
                try
                {
                    while (true)
                    {
                        AttemptStep step = await attempt.NextAsync().ConfigureAwait(false);
                        if (step.IsFailure)
                        {
                            failure = step;
                            break;
                        }

                        if (!string.IsNullOrEmpty(step.Value.Text))
                        {
                            int offset = text.Length;
                            text.Append(step.Value.Text);
                            yield return new ModelPartial(++partials, step.Value.Text, offset);
                        }

                        if (step.Value.IsFinal)
                        {
                            yield return new ModelCallResult(text.ToString(), DegradedReason.None, target.Name, attempts, partials)
                            {
                                FinishReason = step.Value.FinishReason,
                            };
                            yield break;
                        }
                    }
                }
                finally
                {
                    await attempt.DisposeAsync().ConfigureAwait(false);
                }

                lastFailure = failure;
                if (attempt.Streamed)
                {
                    yield return Degraded(text, failure, target.Name, attempts, partials);
                    yield break;
                }

                if (failure.Kind == ModelFailureKind.Permanent || deadline.IsCancellationRequested || retry >= target.Policy.MaxRetries)
                {
                    break;
                }

                double draw;
                lock (_random)
                {
                    draw = _random.NextDouble();
                }

                TimeSpan pause = target.Policy.Backoff(retry, draw);
                if (failure.RetryAfter is { } retryAfter && retryAfter > pause)
                {
                    pause = retryAfter;
                }

                if (_time.GetTimestamp() + (long)(pause.TotalSeconds * _time.TimestampFrequency) >= deadlineAt)
                {
                    // The retry would start after the deadline: give the fallback the time instead.
                    break;
                }

                if (!await PauseAsync(pause, ct, deadline.Token).ConfigureAwait(false))
                {
                    lastFailure = AttemptStep.Failed(DegradedReason.Timeout, ModelFailureKind.Transient, $"timed out after {ModelAttempt.Format(target.Policy.Timeout)}");
                    break;
                }
            }
        }

        yield return Degraded(text, lastFailure, lastModel, attempts, partials);
    }

    /// <summary>Waits out a backoff; false when the target's deadline ran out first.</summary>
    private async Task<bool> PauseAsync(TimeSpan pause, CancellationToken ct, CancellationToken deadline)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline);
        try
        {
            await Task.Delay(pause, _time, linked.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }

    private static ModelCallResult Degraded(StringBuilder text, AttemptStep failure, string model, int attempts, int partials) =>
        new(text.ToString(), failure.Reason == DegradedReason.None ? DegradedReason.Error : failure.Reason, model, attempts, partials)
        {
            Error = $"{model}: {failure.Error}",
        };
}
