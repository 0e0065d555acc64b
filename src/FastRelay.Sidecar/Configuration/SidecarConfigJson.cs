using System.Text.Json.Serialization;

namespace FastRelay.Sidecar.Configuration;

// The configuration file as written: every field optional here, so that validation, not the deserializer, says
// what is missing and where. SidecarConfigValidator turns these into SidecarConfig.

internal sealed class SidecarConfigJson
{
    public RelayConfigJson? Relay { get; set; }

    public List<AgentConfigJson?>? Agents { get; set; }

    public JobsConfigJson? Jobs { get; set; }
}

internal sealed class JobsConfigJson
{
    public int? LeaseMs { get; set; }

    public int? KeepResultMs { get; set; }

    public int? DrainTimeoutMs { get; set; }
}

internal sealed class RelayConfigJson
{
    public string? Url { get; set; }

    public string? TokenEnv { get; set; }

    public string? ClientId { get; set; }
}

internal sealed class AgentConfigJson
{
    public string? Name { get; set; }

    public string? Consumes { get; set; }

    public string? Group { get; set; }

    public ModelConfigJson? Model { get; set; }

    public EmitsConfigJson? Emits { get; set; }

    public int? Concurrency { get; set; }
}

internal sealed class ModelConfigJson
{
    public string? Adapter { get; set; }

    public string? Model { get; set; }

    public string? BaseUrl { get; set; }

    public string? ApiKeyEnv { get; set; }

    public string? System { get; set; }

    public string? Prompt { get; set; }

    public double? Temperature { get; set; }

    public int? MaxTokens { get; set; }

    public int? TimeoutMs { get; set; }

    public int? FirstTokenTimeoutMs { get; set; }

    public int? IdleTimeoutMs { get; set; }

    public int? Retries { get; set; }

    public List<string?>? Script { get; set; }

    public int? TokenDelayMs { get; set; }

    public string? EchoPrefix { get; set; }

    public ModelConfigJson? Fallback { get; set; }
}

internal sealed class EmitsConfigJson
{
    public string? Topic { get; set; }

    public bool? Reply { get; set; }

    public bool? Partials { get; set; }
}

/// <summary>Source-generated (reflection-free) reading of the sidecar configuration; unknown fields are errors.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(SidecarConfigJson))]
internal sealed partial class SidecarConfigJsonContext : JsonSerializerContext;
