using FastRelay.Sidecar.Calls;
using FastRelay.Sidecar.Configuration;

namespace FastRelay.Sidecar.Agents;

/// <summary>A configured agent ready to run: its spec and the caller its workers use for each job.</summary>
/// <remarks>
/// A worker takes a job's input, runs <c>Caller.CallAsync(input, ct)</c>, forwards each <see cref="ModelPartial"/> to
/// the reply topic and publishes the one <see cref="ModelCallResult"/> as the final event. The caller is shared by
/// the agent's <see cref="AgentSpec.Concurrency"/> workers; it holds no per-call state.
/// </remarks>
public sealed record Agent(AgentSpec Spec, ResilientModelCaller Caller)
{
    public string Name => Spec.Name;

    public static IReadOnlyList<Agent> CreateAll(SidecarConfig config, ModelChainFactory models)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(models);
        return [.. config.Agents.Select(spec => new Agent(spec, models.CreateCaller(spec.Model)))];
    }
}
