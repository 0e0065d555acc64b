using FastRelay.Sidecar.Calls;
using FastRelay.Sidecar.Configuration;
using FastRelay.Sidecar.Models;
using FastRelay.Sidecar.Models.OpenAi;

namespace FastRelay.Sidecar.Agents;

/// <summary>Builds callers from model specs; owns the one HttpClient (connection pool) every OpenAI adapter shares.</summary>
public sealed class ModelChainFactory : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly Func<string, string?> _environment;
    private readonly TimeProvider _time;

    /// <param name="http">Client for model servers; one from <see cref="OpenAiChatAdapter.CreateHttpClient"/> (owned) when null.</param>
    /// <param name="environment">Resolves <c>apiKeyEnv</c>; the process environment when null.</param>
    public ModelChainFactory(HttpClient? http = null, Func<string, string?>? environment = null, TimeProvider? time = null)
    {
        _ownsHttp = http is null;
        _http = http ?? OpenAiChatAdapter.CreateHttpClient();
        _environment = environment ?? Environment.GetEnvironmentVariable;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>A caller for <paramref name="spec"/> and its fallbacks, in order.</summary>
    public ResilientModelCaller CreateCaller(ModelSpec spec) => new(CreateChain(spec), _time);

    public IReadOnlyList<ModelTarget> CreateChain(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var chain = new List<ModelTarget>();
        for (ModelSpec? s = spec; s is not null; s = s.Fallback)
        {
            chain.Add(new ModelTarget(s.Name, CreateAdapter(s), s.Prompt, s.Policy));
        }

        return chain;
    }

    public IModelAdapter CreateAdapter(ModelSpec spec) => spec.Adapter switch
    {
        ModelSpec.OpenAi => new OpenAiChatAdapter(_http, new OpenAiChatOptions
        {
            BaseUrl = spec.BaseUrl ?? throw new ArgumentException($"model {spec.Name} has no base URL", nameof(spec)),
            ApiKey = spec.ApiKeyEnv is { } env ? _environment(env) : null,
        }),
        ModelSpec.Scripted => new ScriptedModel(spec.Script, spec.TokenDelay, spec.EchoPrefix, _time),
        _ => throw new ArgumentException($"unknown adapter \"{spec.Adapter}\"", nameof(spec)),
    };

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }
}
