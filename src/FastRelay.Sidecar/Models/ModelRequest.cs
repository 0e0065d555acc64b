namespace FastRelay.Sidecar.Models;

/// <summary>One chat completion request: the model, an optional system prompt and the conversation so far.</summary>
public sealed record ModelRequest(string Model, IReadOnlyList<ChatMessage> Messages)
{
    public string? SystemPrompt { get; init; }

    /// <summary>Sampling temperature; null leaves the server's default.</summary>
    public double? Temperature { get; init; }

    /// <summary>Upper bound on generated tokens; null leaves the server's default.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>A request with one user message.</summary>
    public static ModelRequest FromUser(string model, string content) => new(model, [new ChatMessage(ChatRole.User, content)]);
}

/// <summary>One turn of a conversation.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>The role names of the OpenAI chat format.</summary>
public static class ChatRole
{
    public const string System = "system";
    public const string User = "user";
    public const string Assistant = "assistant";
}
