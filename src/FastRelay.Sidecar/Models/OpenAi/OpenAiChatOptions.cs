namespace FastRelay.Sidecar.Models.OpenAi;

/// <summary>Where an OpenAI-compatible server lives and how to authenticate to it.</summary>
public sealed class OpenAiChatOptions
{
    /// <summary>The server root, e.g. <c>http://127.0.0.1:8000</c> (vLLM), <c>http://127.0.0.1:11434</c> (Ollama),
    /// <c>https://api.openai.com</c>. A trailing <c>/v1</c> is accepted too, as OpenAI SDKs write it.</summary>
    public required Uri BaseUrl { get; init; }

    /// <summary>Sent as <c>Authorization: Bearer</c> when set; local servers need none.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Largest Server-Sent Event accepted; a longer one fails the call as malformed.</summary>
    public int MaxEventBytes { get; init; } = 1 << 20;

    /// <summary><c>{BaseUrl}/v1/chat/completions</c>, without doubling a <c>/v1</c> the base already ends with.</summary>
    public Uri ChatCompletionsUrl
    {
        get
        {
            string root = BaseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/');
            return new Uri(root.EndsWith("/v1", StringComparison.Ordinal) ? root + "/chat/completions" : root + "/v1/chat/completions");
        }
    }
}
