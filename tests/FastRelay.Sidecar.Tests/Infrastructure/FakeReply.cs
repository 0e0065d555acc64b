namespace FastRelay.Sidecar.Tests.Infrastructure;

/// <summary>What <see cref="FakeOpenAiServer"/> does with one request: a normal stream, or one of the injected faults.</summary>
public sealed record FakeReply
{
    /// <summary>Content deltas streamed as chat.completion.chunk events.</summary>
    public IReadOnlyList<string> Tokens { get; init; } = [];

    public int Status { get; init; } = 200;

    /// <summary>Body of a non-200 response (an OpenAI error object by default).</summary>
    public string? ErrorBody { get; init; }

    /// <summary>Retry-After header value in seconds, on an error response.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>Response content type; text/event-stream unless set.</summary>
    public string ContentType { get; init; } = "text/event-stream";

    /// <summary>Wait after the headers before the first token (a slow prefill).</summary>
    public TimeSpan FirstTokenDelay { get; init; }

    public TimeSpan TokenDelay { get; init; }

    /// <summary>After this many tokens, send nothing more and hold the connection open (a stalled model).</summary>
    public int? StallAfterTokens { get; init; }

    /// <summary>After this many tokens, reset the connection (TCP RST); 0 resets before any response bytes.</summary>
    public int? ResetAfterTokens { get; init; }

    /// <summary>After this many tokens, write these raw bytes as the body (SSE framing included) and end the response.</summary>
    public string? RawAfterTokens { get; init; }

    /// <summary>Awaited before a mid-stream reset, so the test can let the client read the tokens sent before it
    /// (a TCP reset may discard data the client has not read yet).</summary>
    public Task? ResetGate { get; init; }

    public int RawAfterTokenCount { get; init; }

    public string FinishReason { get; init; } = "stop";

    /// <summary>Send <c>data: [DONE]</c> at the end (a clean end of the body follows either way).</summary>
    public bool SendDone { get; init; } = true;

    /// <summary>Send the finish_reason chunk before [DONE].</summary>
    public bool SendFinishChunk { get; init; } = true;

    public static FakeReply Stream(params string[] tokens) => new() { Tokens = tokens };

    public static FakeReply Error(int status, string message = "injected failure") => new()
    {
        Status = status,
        ErrorBody = $$$"""{"error":{"message":"{{{message}}}","type":"server_error","code":{{{status}}}}}""",
    };
}
