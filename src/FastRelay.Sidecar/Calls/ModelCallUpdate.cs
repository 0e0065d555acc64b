namespace FastRelay.Sidecar.Calls;

/// <summary>What <see cref="ResilientModelCaller.CallAsync"/> streams: partials, then exactly one <see cref="ModelCallResult"/>.</summary>
public abstract record ModelCallUpdate;

/// <summary>A piece of the reply as it streams.</summary>
/// <param name="Seq">1 for the first partial of the call, then 2, 3, ... without gaps.</param>
/// <param name="Delta">The new text.</param>
/// <param name="Offset">Where <paramref name="Delta"/> starts in the full reply (chars), so a reader that coalesced
/// partials can tell whether it holds the text before it.</param>
public sealed record ModelPartial(int Seq, string Delta, int Offset) : ModelCallUpdate;

/// <summary>Why a result is degraded.</summary>
public enum DegradedReason
{
    /// <summary>Not degraded: the model finished its reply.</summary>
    None,

    /// <summary>The hard timeout (or, on the last target, the first-token timeout) ran out.</summary>
    Timeout,

    /// <summary>The model stopped sending tokens mid-reply for longer than the idle timeout.</summary>
    Stalled,

    /// <summary>The model failed (HTTP error, broken connection, malformed stream) and no fallback succeeded.</summary>
    Error,
}

/// <summary>The one final outcome of a model call: the whole text (partial when <see cref="Degraded"/>).</summary>
/// <param name="Text">Every partial's delta, concatenated.</param>
/// <param name="Reason">Why the result is degraded; <see cref="DegradedReason.None"/> when it is not.</param>
/// <param name="Model">The target that produced the text, or the last one tried when none did.</param>
/// <param name="Attempts">Attempts over all targets, retries included.</param>
/// <param name="Partials">Partials streamed before this result (the last partial's seq).</param>
public sealed record ModelCallResult(string Text, DegradedReason Reason, string Model, int Attempts, int Partials) : ModelCallUpdate
{
    public bool Degraded => Reason != DegradedReason.None;

    /// <summary>The model's finish reason (<c>stop</c>, <c>length</c>, ...) when it finished.</summary>
    public string? FinishReason { get; init; }

    /// <summary>What went wrong, when degraded: "target: message" of the last failure.</summary>
    public string? Error { get; init; }
}
