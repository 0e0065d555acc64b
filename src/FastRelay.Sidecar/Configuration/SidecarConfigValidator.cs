using System.Text;
using FastRelay.Protocol;
using FastRelay.Sidecar.Calls;

namespace FastRelay.Sidecar.Configuration;

/// <summary>Checks the configuration as written, applies defaults, and reports every problem by its field path.</summary>
internal sealed class SidecarConfigValidator
{
    public const int DefaultConcurrency = 4;
    public const int MaxConcurrency = 1024;
    public const int MaxRetries = 10;
    public const int MaxFallbackDepth = 8;
    public const string DefaultScriptedModel = "echo";
    public const string DefaultScriptModel = "script";

    private static readonly string[] RelaySchemes = ["unix", "tcp", "ws", "wss"];

    private readonly List<string> _errors = [];
    private readonly Func<string, string?> _environment;

    private SidecarConfigValidator(Func<string, string?> environment) => _environment = environment;

    public static SidecarConfig Validate(SidecarConfigJson raw, string source, Func<string, string?> environment)
    {
        var validator = new SidecarConfigValidator(environment);
        SidecarConfig config = validator.ValidateRoot(raw);
        if (validator._errors.Count > 0)
        {
            throw new SidecarConfigException(source, validator._errors);
        }

        return config;
    }

    private SidecarConfig ValidateRoot(SidecarConfigJson raw)
    {
        Uri relayUrl = new(SidecarConfig.DefaultRelayUrl);
        if (raw.Relay?.Url is { } url)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out Uri? parsed) || !RelaySchemes.Contains(parsed.Scheme))
            {
                Error("relay.url", $"\"{url}\" is not a relay URL (unix:///path, tcp://host:port, ws://host:port/ws or wss://...)");
            }
            else
            {
                relayUrl = parsed;
            }
        }

        string? tokenEnv = raw.Relay?.TokenEnv;
        if (tokenEnv is not null)
        {
            RequireEnvironment("relay.tokenEnv", tokenEnv);
        }

        string clientId = raw.Relay?.ClientId ?? SidecarConfig.DefaultClientId;
        if (raw.Relay?.ClientId is { } id)
        {
            if (id.Length == 0)
            {
                Error("relay.clientId", "must not be empty (leave it out for \"fastrelay-sidecar\")");
            }
            else
            {
                CheckId("relay.clientId", id);
            }
        }

        JobSettings jobs = ValidateJobs(raw.Jobs);

        var agents = new List<AgentSpec>();
        if (raw.Agents is null || raw.Agents.Count == 0)
        {
            Error("agents", "at least one agent is required");
        }
        else
        {
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < raw.Agents.Count; i++)
            {
                string path = $"agents[{i}]";
                if (raw.Agents[i] is not { } agent)
                {
                    Error(path, "must be an object, not null");
                    continue;
                }

                if (agent.Name is { Length: > 0 } name && !names.TryAdd(name, i))
                {
                    Error($"{path}.name", $"\"{name}\" is already the name of agents[{names[name]}]");
                }

                if (ValidateAgent(agent, path) is { } spec)
                {
                    // One relay connection holds every agent's group membership, and a client cannot tell apart the
                    // copies of one event that two overlapping subscriptions would receive.
                    if (agents.FirstOrDefault(other => TopicRules.Overlap(other.Consumes, spec.Consumes)) is { } overlapping)
                    {
                        Error($"{path}.consumes", $"\"{spec.Consumes}\" overlaps \"{overlapping.Consumes}\" of agent \"{overlapping.Name}\": a job would match both; run such agents in separate sidecars");
                    }

                    agents.Add(spec);
                }
            }
        }

        return new SidecarConfig(relayUrl, agents) { RelayTokenEnv = tokenEnv, ClientId = clientId, Jobs = jobs };
    }

    private JobSettings ValidateJobs(JobsConfigJson? jobs)
    {
        var defaults = JobSettings.Default;
        TimeSpan lease = Milliseconds("jobs.leaseMs", jobs?.LeaseMs, defaults.Lease, JobSettings.MinLease, JobSettings.MaxLease);
        TimeSpan keep = Milliseconds("jobs.keepResultMs", jobs?.KeepResultMs, defaults.KeepResult, JobSettings.MinKeepResult, JobSettings.MaxKeepResult);
        TimeSpan drain = Milliseconds("jobs.drainTimeoutMs", jobs?.DrainTimeoutMs, defaults.DrainTimeout, TimeSpan.Zero, JobSettings.MaxDrainTimeout);
        return new JobSettings(lease, keep, drain);
    }

    private TimeSpan Milliseconds(string path, int? value, TimeSpan fallback, TimeSpan min, TimeSpan max)
    {
        if (value is not { } ms)
        {
            return fallback;
        }

        if (ms < min.TotalMilliseconds || ms > max.TotalMilliseconds)
        {
            Error(path, $"must be between {min.TotalMilliseconds:0} and {max.TotalMilliseconds:0} (was {ms})");
            return fallback;
        }

        return TimeSpan.FromMilliseconds(ms);
    }

    private AgentSpec? ValidateAgent(AgentConfigJson agent, string path)
    {
        int errorsBefore = _errors.Count;

        string? name = agent.Name;
        if (string.IsNullOrWhiteSpace(name))
        {
            Error($"{path}.name", "required");
        }
        else
        {
            CheckId($"{path}.name", name);
        }

        string? consumes = agent.Consumes;
        if (string.IsNullOrEmpty(consumes))
        {
            Error($"{path}.consumes", "required (the topic pattern of the agent's jobs)");
        }
        else if (!TopicRules.Validate(consumes, isPattern: true, out string? topicError))
        {
            Error($"{path}.consumes", $"\"{consumes}\": {topicError}");
        }


        string? group = agent.Group ?? name;
        if (agent.Group is not null)
        {
            if (agent.Group.Length == 0)
            {
                Error($"{path}.group", "must not be empty (leave it out to use the agent's name)");
            }
            else
            {
                CheckId($"{path}.group", agent.Group);
            }
        }

        int concurrency = agent.Concurrency ?? DefaultConcurrency;
        if (concurrency is < 1 or > MaxConcurrency)
        {
            Error($"{path}.concurrency", $"must be between 1 and {MaxConcurrency} (was {concurrency})");
        }

        EmitSpec emits = ValidateEmits(agent.Emits, $"{path}.emits", consumes);

        ModelSpec? model = null;
        if (agent.Model is null)
        {
            Error($"{path}.model", "required (the model call the agent makes)");
        }
        else
        {
            model = ValidateModel(agent.Model, $"{path}.model", parent: null, depth: 0);
        }

        return _errors.Count == errorsBefore ? new AgentSpec(name!, consumes!, group!, model!, emits, concurrency) : null;
    }

    private EmitSpec ValidateEmits(EmitsConfigJson? emits, string path, string? consumes)
    {
        string? topic = emits?.Topic;
        // An agent that forwards its result to the next agent does not answer the requester: the last agent of the
        // chain does, so a job gets one final event however long the chain.
        bool reply = emits?.Reply ?? topic is null;
        if (topic is not null && emits?.Reply == true)
        {
            Error($"{path}.reply", "an agent that forwards to emits.topic does not answer the requester (the chain's last agent does, so the job gets one final); leave reply out (a degraded result still goes to the requester)");
        }
        bool partials = emits?.Partials ?? true;
        if (topic is not null)
        {
            if (!TopicRules.Validate(topic, isPattern: false, out string? error))
            {
                Error($"{path}.topic", $"\"{topic}\": {error}");
            }
            else if (consumes is not null && TopicRules.Validate(consumes, isPattern: true, out _) && TopicRules.Matches(consumes, topic))
            {
                Error($"{path}.topic", $"\"{topic}\" matches the agent's own consumes pattern \"{consumes}\": it would consume its own output");
            }
        }
        else if (!reply)
        {
            Error(path, "emits nothing: set \"topic\", or leave \"reply\" true to answer the requester");
        }

        return new EmitSpec(topic, reply, partials);
    }

    private ModelSpec? ValidateModel(ModelConfigJson model, string path, ModelSpec? parent, int depth)
    {
        int errorsBefore = _errors.Count;
        string? adapter = model.Adapter;
        bool isOpenAi = adapter == ModelSpec.OpenAi;
        bool isScripted = adapter == ModelSpec.Scripted;
        if (adapter is null)
        {
            Error($"{path}.adapter", $"required (\"{ModelSpec.OpenAi}\" or \"{ModelSpec.Scripted}\")");
        }
        else if (!isOpenAi && !isScripted)
        {
            Error($"{path}.adapter", $"unknown adapter \"{adapter}\" (expected \"{ModelSpec.OpenAi}\" or \"{ModelSpec.Scripted}\")");
        }

        string? modelName = model.Model;
        if (modelName is not null && string.IsNullOrWhiteSpace(modelName))
        {
            Error($"{path}.model", "must not be empty");
        }
        else if (modelName is null && isOpenAi)
        {
            Error($"{path}.model", $"required for adapter \"{ModelSpec.OpenAi}\" (the model name the server knows, e.g. \"llama3.1\")");
        }

        Uri? baseUrl = null;
        if (isOpenAi)
        {
            if (model.BaseUrl is null)
            {
                Error($"{path}.baseUrl", $"required for adapter \"{ModelSpec.OpenAi}\" (e.g. \"http://127.0.0.1:11434\")");
            }
            else if (!Uri.TryCreate(model.BaseUrl, UriKind.Absolute, out baseUrl) || baseUrl.Scheme is not ("http" or "https"))
            {
                Error($"{path}.baseUrl", $"\"{model.BaseUrl}\" is not an http:// or https:// URL");
            }

            if (model.ApiKeyEnv is not null)
            {
                RequireEnvironment($"{path}.apiKeyEnv", model.ApiKeyEnv);
            }

            NotFor(path, "script", model.Script is not null, ModelSpec.OpenAi);
            NotFor(path, "tokenDelayMs", model.TokenDelayMs is not null, ModelSpec.OpenAi);
            NotFor(path, "echoPrefix", model.EchoPrefix is not null, ModelSpec.OpenAi);
        }

        if (isScripted)
        {
            NotFor(path, "baseUrl", model.BaseUrl is not null, ModelSpec.Scripted);
            NotFor(path, "apiKeyEnv", model.ApiKeyEnv is not null, ModelSpec.Scripted);
            if (model.Script is { } script)
            {
                for (int i = 0; i < script.Count; i++)
                {
                    if (script[i] is null)
                    {
                        Error($"{path}.script[{i}]", "must be a string, not null");
                    }
                }
            }

            if (model.TokenDelayMs is < 0)
            {
                Error($"{path}.tokenDelayMs", $"must not be negative (was {model.TokenDelayMs})");
            }
        }

        // Prompt fields not given on a fallback come from the model block it stands in for.
        string? system = model.System ?? parent?.Prompt.System;
        string template = model.Prompt ?? parent?.Prompt.Template ?? ModelPrompt.InputPlaceholder;
        if (!template.Contains(ModelPrompt.InputPlaceholder, StringComparison.Ordinal))
        {
            Error($"{path}.prompt", $"must contain the {ModelPrompt.InputPlaceholder} placeholder (where the job's input goes)");
        }

        double? temperature = model.Temperature ?? parent?.Prompt.Temperature;
        if (model.Temperature is { } t && (double.IsNaN(t) || t < 0 || t > 2))
        {
            Error($"{path}.temperature", $"must be between 0 and 2 (was {t})");
        }

        int? maxTokens = model.MaxTokens ?? parent?.Prompt.MaxTokens;
        if (model.MaxTokens is < 1)
        {
            Error($"{path}.maxTokens", $"must be at least 1 (was {model.MaxTokens})");
        }

        int timeoutMs = model.TimeoutMs ?? (int)ModelCallPolicy.DefaultTimeout.TotalMilliseconds;
        if (timeoutMs < 1)
        {
            Error($"{path}.timeoutMs", $"must be at least 1 (was {timeoutMs})");
        }

        CheckInnerTimeout(path, "firstTokenTimeoutMs", model.FirstTokenTimeoutMs, timeoutMs);
        CheckInnerTimeout(path, "idleTimeoutMs", model.IdleTimeoutMs, timeoutMs);

        int retries = model.Retries ?? ModelCallPolicy.Default.MaxRetries;
        if (retries is < 0 or > MaxRetries)
        {
            Error($"{path}.retries", $"must be between 0 and {MaxRetries} (was {retries})");
        }

        ModelSpec? spec = null;
        if (_errors.Count == errorsBefore)
        {
            modelName ??= model.Script is { Count: > 0 } ? DefaultScriptModel : DefaultScriptedModel;
            spec = new ModelSpec(
                adapter!,
                modelName,
                new ModelPrompt(modelName)
                {
                    System = system,
                    Template = template,
                    Temperature = temperature,
                    MaxTokens = maxTokens,
                },
                new ModelCallPolicy
                {
                    Timeout = TimeSpan.FromMilliseconds(timeoutMs),
                    FirstTokenTimeout = Milliseconds(model.FirstTokenTimeoutMs),
                    IdleTimeout = Milliseconds(model.IdleTimeoutMs),
                    MaxRetries = retries,
                })
            {
                BaseUrl = baseUrl,
                ApiKeyEnv = model.ApiKeyEnv,
                Script = model.Script is { } s ? [.. s.Select(line => line!)] : [],
                TokenDelay = TimeSpan.FromMilliseconds(model.TokenDelayMs ?? 0),
                EchoPrefix = model.EchoPrefix ?? "",
            };
        }

        if (model.Fallback is { } fallback)
        {
            if (depth + 1 >= MaxFallbackDepth)
            {
                Error($"{path}.fallback", $"fallback chain is deeper than {MaxFallbackDepth} models");
            }
            else
            {
                ModelSpec? fallbackSpec = ValidateModel(fallback, $"{path}.fallback", spec, depth + 1);
                if (spec is not null)
                {
                    spec = spec with { Fallback = fallbackSpec };
                }
            }
        }

        return _errors.Count == errorsBefore ? spec : null;
    }

    private void CheckInnerTimeout(string path, string field, int? value, int timeoutMs)
    {
        if (value is not { } ms)
        {
            return;
        }

        if (ms < 1)
        {
            Error($"{path}.{field}", $"must be at least 1 (was {ms})");
        }
        else if (ms > timeoutMs)
        {
            Error($"{path}.{field}", $"must not exceed timeoutMs ({timeoutMs}); the hard timeout would fire first");
        }
    }

    private void NotFor(string path, string field, bool present, string adapter)
    {
        if (present)
        {
            Error($"{path}.{field}", $"not used by adapter \"{adapter}\"");
        }
    }

    private void CheckId(string path, string id)
    {
        int bytes = Encoding.UTF8.GetByteCount(id);
        if (bytes > ProtocolLimits.MaxIdBytes)
        {
            Error(path, $"is {bytes} bytes long; the limit is {ProtocolLimits.MaxIdBytes}");
        }
        else if (id.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            Error(path, $"\"{id}\" must not contain whitespace or control characters");
        }
    }

    private void RequireEnvironment(string path, string variable)
    {
        if (string.IsNullOrWhiteSpace(variable))
        {
            Error(path, "must name an environment variable");
        }
        else if (string.IsNullOrEmpty(_environment(variable)))
        {
            Error(path, $"environment variable {variable} is not set");
        }
    }

    private static TimeSpan? Milliseconds(int? ms) => ms is { } v ? TimeSpan.FromMilliseconds(v) : null;

    private void Error(string path, string message) => _errors.Add($"{path}: {message}");
}
