namespace FastRelay.Sidecar.Models;

/// <summary>One piece of a streamed reply: a text delta, or the final marker with the finish reason.</summary>
public readonly record struct ModelChunk(string Text, string? FinishReason)
{
    /// <summary>The finish reason when the server gave none (it sent <c>[DONE]</c> only).</summary>
    public const string Stop = "stop";

    /// <summary>True for the last chunk of a reply; its <see cref="Text"/> may still carry a (last) delta.</summary>
    public bool IsFinal => FinishReason is not null;

    public static ModelChunk Delta(string text) => new(text, null);

    public static ModelChunk Final(string finishReason = Stop) => new("", finishReason);
}
