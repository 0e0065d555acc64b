using FastRelay.Sidecar.Models;

namespace FastRelay.Sidecar.Calls;

/// <summary>One link of a fallback chain: an adapter, the prompt it gets, and the policy its calls run under.</summary>
/// <param name="Name">Reported as the model used, e.g. <c>openai:llama3.1</c> or <c>scripted:echo</c>.</param>
public sealed record ModelTarget(string Name, IModelAdapter Adapter, ModelPrompt Prompt, ModelCallPolicy Policy);
