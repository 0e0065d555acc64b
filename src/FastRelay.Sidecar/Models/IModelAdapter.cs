namespace FastRelay.Sidecar.Models;

/// <summary>A chat model that streams its reply: text deltas, then exactly one final chunk.</summary>
/// <remarks>
/// Contract: the stream yields zero or more text chunks and ends with one chunk whose <see cref="ModelChunk.IsFinal"/>
/// is true. Failures surface as <see cref="ModelException"/>; cancellation of <c>ct</c> as
/// <see cref="OperationCanceledException"/>. Timeouts, retries and fallbacks are not the adapter's job: they belong to
/// <see cref="Calls.ResilientModelCaller"/>, which also knows whether a token has been streamed yet.
/// </remarks>
public interface IModelAdapter
{
    IAsyncEnumerable<ModelChunk> StreamAsync(ModelRequest request, CancellationToken ct);
}
