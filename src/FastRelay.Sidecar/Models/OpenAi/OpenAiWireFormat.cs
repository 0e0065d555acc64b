using System.Text.Json;
using System.Text.Json.Serialization;

namespace FastRelay.Sidecar.Models.OpenAi;

/// <summary>The body of <c>POST /v1/chat/completions</c>, only the fields FastRelay sends.</summary>
internal sealed class ChatCompletionRequest
{
    [JsonPropertyName("model")]
    public required string Model { get; init; }

    [JsonPropertyName("messages")]
    public required IReadOnlyList<ChatCompletionMessage> Messages { get; init; }

    [JsonPropertyName("stream")]
    public bool Stream { get; init; } = true;

    [JsonPropertyName("temperature")]
    public double? Temperature { get; init; }

    [JsonPropertyName("max_tokens")]
    public int? MaxTokens { get; init; }
}

internal sealed class ChatCompletionMessage
{
    [JsonPropertyName("role")]
    public required string Role { get; init; }

    [JsonPropertyName("content")]
    public required string Content { get; init; }
}

/// <summary>One <c>data:</c> payload of the stream (<c>chat.completion.chunk</c>), or an error object sent mid-stream.</summary>
internal sealed class ChatCompletionChunk
{
    [JsonPropertyName("choices")]
    public List<ChatCompletionChoice>? Choices { get; set; }

    /// <summary>An object with a message (OpenAI, vLLM, llama.cpp) or a bare string (some proxies).</summary>
    [JsonPropertyName("error")]
    public JsonElement? Error { get; set; }

    /// <summary>vLLM's older error shape: <c>{"object":"error","message":...}</c> at the top level.</summary>
    [JsonPropertyName("object")]
    public string? Object { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }
}

internal sealed class ChatCompletionChoice
{
    [JsonPropertyName("index")]
    public int Index { get; set; }

    [JsonPropertyName("delta")]
    public ChatCompletionDelta? Delta { get; set; }

    [JsonPropertyName("finish_reason")]
    public string? FinishReason { get; set; }
}

internal sealed class ChatCompletionDelta
{
    [JsonPropertyName("content")]
    public string? Content { get; set; }
}

/// <summary>An error response body of a failed HTTP request: <c>{"error": {"message": ...}}</c> or <c>{"error": "..."}</c>.</summary>
internal sealed class ChatCompletionErrorBody
{
    [JsonPropertyName("error")]
    public JsonElement? Error { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }
}

/// <summary>Source-generated (reflection-free) serialization of the OpenAI chat wire format.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(ChatCompletionErrorBody))]
internal sealed partial class OpenAiJsonContext : JsonSerializerContext;
