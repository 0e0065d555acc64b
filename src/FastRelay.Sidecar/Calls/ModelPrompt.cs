using FastRelay.Sidecar.Models;

namespace FastRelay.Sidecar.Calls;

/// <summary>How one model target turns a job's input into a request: model name, system prompt, user template.</summary>
public sealed record ModelPrompt(string Model)
{
    /// <summary>Replaced by the job's input in <see cref="Template"/>.</summary>
    public const string InputPlaceholder = "{input}";

    public string? System { get; init; }

    /// <summary>The user message; every <c>{input}</c> becomes the job's input.</summary>
    public string Template { get; init; } = InputPlaceholder;

    public double? Temperature { get; init; }

    public int? MaxTokens { get; init; }

    public ModelRequest Render(string input)
    {
        ArgumentNullException.ThrowIfNull(input);
        string user = Template.Replace(InputPlaceholder, input, StringComparison.Ordinal);
        return new ModelRequest(Model, [new ChatMessage(ChatRole.User, user)])
        {
            SystemPrompt = System,
            Temperature = Temperature,
            MaxTokens = MaxTokens,
        };
    }
}
