using FastRelay.Sidecar.Models;
using FastRelay.Sidecar.Models.OpenAi;
using FastRelay.Sidecar.Tests.Infrastructure;

namespace FastRelay.Sidecar.Tests;

public sealed class OpenAiChatAdapterTests : IAsyncLifetime
{
    private readonly FakeOpenAiServer _server = new();
    private readonly HttpClient _http = OpenAiChatAdapter.CreateHttpClient();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private OpenAiChatAdapter Adapter(string? apiKey = null) => new(_http, new OpenAiChatOptions { BaseUrl = _server.BaseUrl, ApiKey = apiKey });

    private static ModelRequest Request => ModelRequest.FromUser("fake-model", "Say hello");

    [Fact]
    public async Task Streams_the_deltas_in_order_then_one_final_chunk_with_the_finish_reason()
    {
        _server.Enqueue(FakeReply.Stream("The", " quick", " brown", " fox") with { FinishReason = "length" });

        List<ModelChunk> chunks = await Collect.ChunksAsync(Adapter(), Request);

        Assert.Equal(["The", " quick", " brown", " fox", ""], chunks.Select(c => c.Text));
        Assert.All(chunks[..^1], c => Assert.False(c.IsFinal));
        Assert.Equal("length", chunks[^1].FinishReason);
    }

    [Fact]
    public async Task Posts_a_streaming_chat_completion_request_with_system_prompt_options_and_bearer_key()
    {
        var request = new ModelRequest("llama3.1", [new ChatMessage(ChatRole.User, "What is \"FastRelay\"?")])
        {
            SystemPrompt = "Be brief.",
            Temperature = 0.25,
            MaxTokens = 64,
        };

        await Collect.ChunksAsync(Adapter(apiKey: "sk-test"), request);

        RecordedRequest sent = Assert.Single(_server.Requests);
        Assert.Equal("POST", sent.Method);
        Assert.Equal("/v1/chat/completions", sent.Path);
        Assert.Equal("Bearer sk-test", sent.Headers["Authorization"]);
        Assert.Contains("text/event-stream", sent.Headers["Accept"], StringComparison.Ordinal);
        Assert.Equal("llama3.1", sent.Json.GetProperty("model").GetString());
        Assert.True(sent.Json.GetProperty("stream").GetBoolean());
        Assert.Equal(0.25, sent.Json.GetProperty("temperature").GetDouble());
        Assert.Equal(64, sent.Json.GetProperty("max_tokens").GetInt32());
        var messages = sent.Json.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["system", "user"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("What is \"FastRelay\"?", messages[1].GetProperty("content").GetString());
    }

    [Fact]
    public async Task Sends_no_authorization_and_no_unset_options_for_a_local_server()
    {
        await Collect.ChunksAsync(Adapter(), Request);

        RecordedRequest sent = Assert.Single(_server.Requests);
        Assert.False(sent.Headers.ContainsKey("Authorization"));
        Assert.False(sent.Json.TryGetProperty("temperature", out _));
        Assert.False(sent.Json.TryGetProperty("max_tokens", out _));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions")]
    [InlineData("http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1/chat/completions")]
    [InlineData("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions")]
    [InlineData("http://gateway/llm/v1/", "http://gateway/llm/v1/chat/completions")]
    public void Chat_completions_url_appends_v1_once(string baseUrl, string expected) =>
        Assert.Equal(expected, new OpenAiChatOptions { BaseUrl = new Uri(baseUrl) }.ChatCompletionsUrl.ToString());

    [Theory]
    [InlineData(429, ModelFailureKind.Transient)]
    [InlineData(500, ModelFailureKind.Transient)]
    [InlineData(502, ModelFailureKind.Transient)]
    [InlineData(503, ModelFailureKind.Transient)]
    [InlineData(504, ModelFailureKind.Transient)]
    [InlineData(400, ModelFailureKind.Permanent)]
    [InlineData(401, ModelFailureKind.Permanent)]
    [InlineData(403, ModelFailureKind.Permanent)]
    [InlineData(404, ModelFailureKind.Permanent)]
    public async Task Http_errors_are_classified_and_carry_the_servers_message(int status, ModelFailureKind kind)
    {
        _server.Enqueue(FakeReply.Error(status, "model overloaded or missing"));

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.Equal(kind, ex.Kind);
        Assert.Equal(status, ex.StatusCode);
        Assert.Contains($"HTTP {status}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("model overloaded or missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retry_after_of_a_429_is_reported()
    {
        _server.Enqueue(FakeReply.Error(429) with { RetryAfterSeconds = 3 });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.True(ex.IsTransient);
        Assert.Equal(TimeSpan.FromSeconds(3), ex.RetryAfter);
    }

    [Fact]
    public async Task Connection_reset_before_the_response_is_transient()
    {
        _server.Enqueue(new FakeReply { ResetAfterTokens = 0 });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.True(ex.IsTransient, ex.Message);
    }

    [Fact]
    public async Task Connection_reset_mid_stream_is_transient_after_the_tokens_already_read()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _server.Enqueue(FakeReply.Stream("one", " two", " three") with { ResetAfterTokens = 2, ResetGate = gate.Task });
        var received = new List<string>();

        async Task Read()
        {
            await foreach (ModelChunk chunk in Adapter().StreamAsync(Request, CancellationToken.None))
            {
                received.Add(chunk.Text);
                if (received.Count == 2)
                {
                    gate.SetResult();
                }
            }
        }

        var ex = await Assert.ThrowsAsync<ModelException>(() => Read().WaitAsync(Collect.Patience));

        Assert.Equal(["one", " two"], received);
        Assert.True(ex.IsTransient, ex.Message);
        Assert.Contains("mid-stream", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connection_refused_is_transient()
    {
        var closed = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        closed.Start();
        int port = ((System.Net.IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        var adapter = new OpenAiChatAdapter(_http, new OpenAiChatOptions { BaseUrl = new Uri($"http://127.0.0.1:{port}") });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(adapter, Request));

        Assert.True(ex.IsTransient, ex.Message);
    }

    [Fact]
    public async Task Malformed_json_in_an_event_is_a_permanent_error_that_shows_the_payload()
    {
        _server.Enqueue(FakeReply.Stream("ok") with { RawAfterTokens = "data: {\"choices\": [oops\n\n", RawAfterTokenCount = 1 });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.Equal(ModelFailureKind.Permanent, ex.Kind);
        Assert.Contains("malformed event stream", ex.Message, StringComparison.Ordinal);
        Assert.Contains("{\"choices\": [oops", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_event_that_is_not_a_completion_chunk_is_a_permanent_error()
    {
        _server.Enqueue(new FakeReply { RawAfterTokens = "data: {\"hello\": 1}\n\n" });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.Equal(ModelFailureKind.Permanent, ex.Kind);
        Assert.Contains("no \"choices\"", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_cut_off_before_done_is_transient()
    {
        _server.Enqueue(FakeReply.Stream("partial") with { SendFinishChunk = false, SendDone = false });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.True(ex.IsTransient);
        Assert.Contains("before data: [DONE]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_that_finished_but_omits_done_still_completes()
    {
        _server.Enqueue(FakeReply.Stream("all", " there") with { SendDone = false });

        List<ModelChunk> chunks = await Collect.ChunksAsync(Adapter(), Request);

        Assert.Equal("all there", string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal("stop", chunks[^1].FinishReason);
    }

    [Fact]
    public async Task An_error_object_sent_mid_stream_fails_the_call_with_its_message()
    {
        _server.Enqueue(FakeReply.Stream("half") with
        {
            RawAfterTokens = "data: {\"error\": {\"message\": \"CUDA out of memory\", \"code\": 500}}\n\n",
            RawAfterTokenCount = 1,
        });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.Contains("CUDA out of memory", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_json_body_instead_of_an_event_stream_is_a_permanent_error()
    {
        _server.Enqueue(new FakeReply { ContentType = "application/json", RawAfterTokens = "{\"choices\":[]}" });

        var ex = await Assert.ThrowsAsync<ModelException>(() => Collect.ChunksAsync(Adapter(), Request));

        Assert.Equal(ModelFailureKind.Permanent, ex.Kind);
        Assert.Contains("instead of text/event-stream", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancellation_by_the_caller_surfaces_as_cancellation_not_as_a_model_error()
    {
        _server.Enqueue(FakeReply.Stream("a", "b") with { StallAfterTokens = 1 });
        using var cts = new CancellationTokenSource();

        async Task Read()
        {
            await foreach (ModelChunk _ in Adapter().StreamAsync(Request, cts.Token))
            {
                await cts.CancelAsync();
            }
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Read().WaitAsync(Collect.Patience));
        await _server.ClientAbandonedStallAsync(Collect.Patience);
    }
}
