using FastRelay.Sidecar.Agents;
using FastRelay.Sidecar.Calls;
using FastRelay.Sidecar.Configuration;
using FastRelay.Sidecar.Models;
using FastRelay.Sidecar.Models.OpenAi;
using FastRelay.Sidecar.Tests.Infrastructure;

namespace FastRelay.Sidecar.Tests;

public sealed class SidecarConfigTests
{
    private static readonly Func<string, string?> NoEnvironment = _ => null;

    private static SidecarConfigException Rejected(string json, Func<string, string?>? environment = null) =>
        Assert.Throws<SidecarConfigException>(() => SidecarConfig.Parse(json, "test.json", environment ?? NoEnvironment));

    [Fact]
    public async Task The_example_echo_agent_loads_and_answers_with_no_model_server()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "examples", "echo-agent.json");

        SidecarConfig config = SidecarConfig.Load(path, NoEnvironment);
        using var models = new ModelChainFactory(environment: NoEnvironment);
        Agent agent = Assert.Single(Agent.CreateAll(config, models));
        var (_, result) = await Collect.CallAsync(agent.Caller, "hello relay");

        Assert.Equal("echo", agent.Name);
        Assert.Equal(ModelSpec.Scripted, agent.Spec.Model.Adapter);
        Assert.False(result.Degraded);
        Assert.Equal("You said: hello relay", result.Text);
    }

    [Fact]
    public void Defaults_fill_what_an_agent_leaves_out()
    {
        SidecarConfig config = SidecarConfig.Parse("""
            { "agents": [ { "name": "summarizer", "consumes": "jobs.summarize", "model": { "adapter": "scripted" } } ] }
            """, "test.json", NoEnvironment);

        AgentSpec agent = Assert.Single(config.Agents);
        Assert.Equal(new Uri(SidecarConfig.DefaultRelayUrl), config.RelayUrl);
        Assert.Equal("summarizer", agent.Group);
        Assert.Equal(4, agent.Concurrency);
        Assert.Equal(new EmitSpec(null, Reply: true, Partials: true), agent.Emits);
        Assert.Equal("scripted:echo", agent.Model.Name);
        Assert.Equal("{input}", agent.Model.Prompt.Template);
        Assert.Equal(TimeSpan.FromSeconds(10), agent.Model.Policy.Timeout);
        Assert.Equal(2, agent.Model.Policy.MaxRetries);
        Assert.Null(agent.Model.Policy.IdleTimeout);
        Assert.Null(agent.Model.Fallback);
    }

    [Fact]
    public void A_full_openai_agent_with_a_fallback_chain_is_read_with_comments_and_trailing_commas()
    {
        SidecarConfig config = SidecarConfig.Parse("""
            {
              // the relay this sidecar serves
              "relay": { "url": "tcp://127.0.0.1:7701", "tokenEnv": "RELAY_TOKEN" },
              "agents": [
                {
                  "name": "answer", "consumes": "jobs.answer.*", "group": "answerers", "concurrency": 16,
                  "emits": { "topic": "answers.all", "partials": false },
                  "model": {
                    "adapter": "openai", "baseUrl": "http://127.0.0.1:8000", "model": "llama3.1", "apiKeyEnv": "VLLM_KEY",
                    "system": "Be brief.", "prompt": "Q: {input}\nA:", "temperature": 0.2, "maxTokens": 256,
                    "timeoutMs": 8000, "firstTokenTimeoutMs": 3000, "idleTimeoutMs": 2000, "retries": 1,
                    "fallback": { "adapter": "openai", "baseUrl": "https://api.openai.com/v1", "model": "gpt-4o-mini",
                                  "fallback": { "adapter": "scripted", "script": ["Sorry, no model is available."], }, },
                  },
                },
              ],
            }
            """, "test.json", name => name is "RELAY_TOKEN" or "VLLM_KEY" ? "set" : null);

        AgentSpec agent = Assert.Single(config.Agents);
        Assert.Equal("tcp://127.0.0.1:7701/", config.RelayUrl.ToString());
        Assert.Equal("RELAY_TOKEN", config.RelayTokenEnv);
        Assert.Equal(("answerers", 16), (agent.Group, agent.Concurrency));
        Assert.Equal(new EmitSpec("answers.all", Reply: false, Partials: false), agent.Emits);

        ModelSpec primary = agent.Model;
        Assert.Equal("openai:llama3.1", primary.Name);
        Assert.Equal("VLLM_KEY", primary.ApiKeyEnv);
        Assert.Equal(new ModelPrompt("llama3.1") { System = "Be brief.", Template = "Q: {input}\nA:", Temperature = 0.2, MaxTokens = 256 }, primary.Prompt);
        Assert.Equal(TimeSpan.FromSeconds(8), primary.Policy.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(3), primary.Policy.FirstTokenTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2), primary.Policy.IdleTimeout);
        Assert.Equal(1, primary.Policy.MaxRetries);

        // A fallback keeps the prompt of the block it stands in for, and its own model and policy.
        ModelSpec second = primary.Fallback!;
        Assert.Equal("openai:gpt-4o-mini", second.Name);
        Assert.Equal("Q: {input}\nA:", second.Prompt.Template);
        Assert.Equal("Be brief.", second.Prompt.System);
        Assert.Equal("gpt-4o-mini", second.Prompt.Model);
        Assert.Equal(TimeSpan.FromSeconds(10), second.Policy.Timeout);
        ModelSpec third = second.Fallback!;
        Assert.Equal("scripted:script", third.Name);
        Assert.Equal(["Sorry, no model is available."], third.Script);
    }

    [Theory]
    [InlineData("""{ "agents": [] }""", "agents: at least one agent is required")]
    [InlineData("""{ "agents": [ { "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "agents[0].name: required")]
    [InlineData("""{ "agents": [ { "name": "a", "model": { "adapter": "scripted" } } ] }""", "agents[0].consumes: required")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "jobs..x", "model": { "adapter": "scripted" } } ] }""", "agents[0].consumes: \"jobs..x\": pattern has an empty segment")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "jobs.a>", "model": { "adapter": "scripted" } } ] }""", "agents[0].consumes: \"jobs.a>\": pattern has '>' inside a segment")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a" } ] }""", "agents[0].model: required")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": {} } ] }""", "agents[0].model.adapter: required")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "gpt" } } ] }""", "agents[0].model.adapter: unknown adapter \"gpt\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" }, "concurrency": 0 } ] }""", "agents[0].concurrency: must be between 1 and 1024")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "prompt": "no placeholder" } } ] }""", "agents[0].model.prompt: must contain the {input} placeholder")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "timeoutMs": 0 } } ] }""", "agents[0].model.timeoutMs: must be at least 1")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "timeoutMs": 1000, "idleTimeoutMs": 5000 } } ] }""", "agents[0].model.idleTimeoutMs: must not exceed timeoutMs (1000)")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "retries": 11 } } ] }""", "agents[0].model.retries: must be between 0 and 10")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "baseUrl": "http://x" } } ] }""", "agents[0].model.baseUrl: not used by adapter \"scripted\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "openai", "model": "m" } } ] }""", "agents[0].model.baseUrl: required for adapter \"openai\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "openai", "model": "m", "baseUrl": "localhost:8000" } } ] }""", "agents[0].model.baseUrl: \"localhost:8000\" is not an http:// or https:// URL")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "openai", "baseUrl": "http://h" } } ] }""", "agents[0].model.model: required for adapter \"openai\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "openai", "model": "m", "baseUrl": "http://h", "apiKeyEnv": "MISSING_KEY" } } ] }""", "agents[0].model.apiKeyEnv: environment variable MISSING_KEY is not set")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "fallback": { "adapter": "openai", "model": "m" } } } ] }""", "agents[0].model.fallback.baseUrl: required for adapter \"openai\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "jobs.>", "emits": { "topic": "jobs.out" }, "model": { "adapter": "scripted" } } ] }""", "agents[0].emits.topic: \"jobs.out\" matches the agent's own consumes pattern \"jobs.>\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "emits": { "topic": "out.*" }, "model": { "adapter": "scripted" } } ] }""", "agents[0].emits.topic: \"out.*\": topic contains the wildcard '*'")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "emits": { "reply": false }, "model": { "adapter": "scripted" } } ] }""", "agents[0].emits: emits nothing")]
    [InlineData("""{ "relay": { "url": "http://x" }, "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "relay.url: \"http://x\" is not a relay URL")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "modle": { "adapter": "scripted" } } ] }""", "agents[0].modle: unknown field")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted", "timeoutMs": "10s" } } ] }""", "agents[0].model.timeoutMs: wrong type of value")]
    [InlineData("""{ "jobs": { "leaseMs": 100 }, "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "jobs.leaseMs: must be between 300 and 300000 (was 100)")]
    [InlineData("""{ "jobs": { "keepResultMs": 1000 }, "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "jobs.keepResultMs: must be between 10000 and 86400000")]
    [InlineData("""{ "jobs": { "drainTimeoutMs": -1 }, "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "jobs.drainTimeoutMs: must be between 0 and 600000")]
    [InlineData("""{ "jobs": { "lease": 1 }, "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "jobs.lease: unknown field")]
    [InlineData("""{ "relay": { "clientId": "" }, "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] }""", "relay.clientId: must not be empty")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "jobs.*", "model": { "adapter": "scripted" } }, { "name": "b", "consumes": "jobs.x", "model": { "adapter": "scripted" } } ] }""", "agents[1].consumes: \"jobs.x\" overlaps \"jobs.*\" of agent \"a\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "jobs.>", "model": { "adapter": "scripted" } }, { "name": "b", "consumes": "*.x.y", "model": { "adapter": "scripted" } } ] }""", "agents[1].consumes: \"*.x.y\" overlaps \"jobs.>\"")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a", "emits": { "topic": "b", "reply": true }, "model": { "adapter": "scripted" } } ] }""", "agents[0].emits.reply: an agent that forwards to emits.topic does not answer the requester")]
    [InlineData("""{ "agents": [ { "name": "a", "consumes": "a" """, "invalid JSON")]
    public void Invalid_configuration_is_rejected_with_a_message_that_names_the_field(string json, string expected)
    {
        SidecarConfigException ex = Rejected(json);

        Assert.Contains(ex.Errors, e => e.StartsWith(expected, StringComparison.Ordinal) || (expected == "invalid JSON" && e.Contains(expected, StringComparison.Ordinal)));
        Assert.Contains("test.json", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("jobs.a", "jobs.a", true)]
    [InlineData("jobs.a", "jobs.b", false)]
    [InlineData("jobs.*", "jobs.b", true)]
    [InlineData("jobs.*", "jobs.b.c", false)]
    [InlineData("jobs.>", "jobs.b.c", true)]
    [InlineData("jobs.>", "jobs", false)]
    [InlineData("*.a", "b.*", true)]
    [InlineData("a.>", "*.b.>", true)]
    [InlineData("a.b", "a.b.c", false)]
    public void Topics_and_patterns_overlap_when_some_topic_matches_both(string a, string b, bool overlap)
    {
        Assert.Equal(overlap, TopicRules.Overlap(a, b));
        Assert.Equal(overlap, TopicRules.Overlap(b, a));
    }

    [Fact]
    public void Job_leases_and_the_relay_client_id_have_defaults_and_can_be_set()
    {
        const string Agent = """ "agents": [ { "name": "a", "consumes": "a", "model": { "adapter": "scripted" } } ] """;
        SidecarConfig defaults = SidecarConfig.Parse("{" + Agent + "}");
        Assert.Equal(JobSettings.Default, defaults.Jobs);
        Assert.Equal(SidecarConfig.DefaultClientId, defaults.ClientId);

        SidecarConfig set = SidecarConfig.Parse("""{ "relay": { "clientId": "edge-7" }, "jobs": { "leaseMs": 2500, "keepResultMs": 60000, "drainTimeoutMs": 0 }, """ + Agent + "}");
        Assert.Equal(new JobSettings(TimeSpan.FromMilliseconds(2500), TimeSpan.FromMinutes(1), TimeSpan.Zero), set.Jobs);
        Assert.Equal("edge-7", set.ClientId);
    }

    [Fact]
    public void Every_problem_is_reported_at_once_with_its_agent_index()
    {
        SidecarConfigException ex = Rejected("""
            { "agents": [
                { "name": "ok", "consumes": "jobs.ok", "model": { "adapter": "scripted" } },
                { "name": "remote", "consumes": "jobs.remote", "model": { "adapter": "openai", "model": "m", "temperature": 5 } },
                { "name": "ok", "consumes": "jobs.again", "model": { "adapter": "scripted" } }
            ] }
            """);

        Assert.Equal(
            [
                "agents[1].model.baseUrl: required for adapter \"openai\" (e.g. \"http://127.0.0.1:11434\")",
                "agents[1].model.temperature: must be between 0 and 2 (was 5)",
                "agents[2].name: \"ok\" is already the name of agents[0]",
            ],
            ex.Errors);
        Assert.Contains("agents[1].model.baseUrl: required for adapter \"openai\"", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_is_a_configuration_error_naming_the_file()
    {
        var ex = Assert.Throws<SidecarConfigException>(() => SidecarConfig.Load("/nonexistent/agents.json", NoEnvironment));

        Assert.Contains("/nonexistent/agents.json", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_chain_factory_builds_each_adapter_and_resolves_the_api_key_from_the_environment()
    {
        await using var server = new FakeOpenAiServer();
        string json = $$"""
            { "agents": [ { "name": "a", "consumes": "jobs.a",
              "model": { "adapter": "openai", "baseUrl": "{{server.BaseUrl}}", "model": "m", "apiKeyEnv": "THE_KEY",
                         "fallback": { "adapter": "scripted", "echoPrefix": "fallback: " } } } ] }
            """;
        Func<string, string?> environment = name => name == "THE_KEY" ? "sk-from-env" : null;
        SidecarConfig config = SidecarConfig.Parse(json, "test.json", environment);
        using var models = new ModelChainFactory(environment: environment);

        IReadOnlyList<ModelTarget> chain = models.CreateChain(config.Agents[0].Model);
        var (_, result) = await Collect.CallAsync(models.CreateCaller(config.Agents[0].Model), "hi");

        Assert.Equal(["openai:m", "scripted:echo"], chain.Select(t => t.Name));
        Assert.IsType<OpenAiChatAdapter>(chain[0].Adapter);
        Assert.IsType<ScriptedModel>(chain[1].Adapter);
        Assert.Equal("Hello world!", result.Text);
        Assert.Equal("Bearer sk-from-env", Assert.Single(server.Requests).Headers["Authorization"]);
    }
}
