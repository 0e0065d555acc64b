using FastRelay.Sidecar.Calls;
using FastRelay.Sidecar.Models;
using FastRelay.Sidecar.Models.OpenAi;
using FastRelay.Sidecar.Tests.Infrastructure;

namespace FastRelay.Sidecar.Tests;

public sealed class ResilientModelCallerTests : IAsyncLifetime
{
    private static readonly ModelCallPolicy Fast = new()
    {
        Timeout = TimeSpan.FromSeconds(10),
        MaxRetries = 2,
        BackoffBase = TimeSpan.FromMilliseconds(5),
        BackoffMax = TimeSpan.FromMilliseconds(20),
    };

    private readonly FakeOpenAiServer _primary = new();
    private readonly FakeOpenAiServer _secondary = new();
    private readonly HttpClient _http = OpenAiChatAdapter.CreateHttpClient();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _primary.DisposeAsync();
        await _secondary.DisposeAsync();
    }

    private ModelTarget Http(FakeOpenAiServer server, string name, ModelCallPolicy? policy = null) =>
        new(name, new OpenAiChatAdapter(_http, new OpenAiChatOptions { BaseUrl = server.BaseUrl }), new ModelPrompt(name), policy ?? Fast);

    private static ModelTarget Scripted(string reply, ModelCallPolicy? policy = null) =>
        new("scripted:fallback", new ScriptedModel([reply]), new ModelPrompt("fallback"), policy ?? Fast);

    private static ResilientModelCaller Caller(params ModelTarget[] chain) => new(chain);

    [Fact]
    public async Task Streams_numbered_partials_then_one_final_with_the_assembled_text()
    {
        _primary.Enqueue(FakeReply.Stream("Relays", " never", " wait", " on", " models."));

        var (partials, result) = await Collect.CallAsync(Caller(Http(_primary, "primary")), "why?");

        Assert.Equal([1, 2, 3, 4, 5], partials.Select(p => p.Seq));
        Assert.Equal([0, 6, 12, 17, 20], partials.Select(p => p.Offset));
        Assert.Equal("Relays never wait on models.", result.Text);
        Assert.Equal(string.Concat(partials.Select(p => p.Delta)), result.Text);
        Assert.False(result.Degraded);
        Assert.Equal(DegradedReason.None, result.Reason);
        Assert.Equal("primary", result.Model);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(5, result.Partials);
        Assert.Equal("stop", result.FinishReason);
        Assert.Null(result.Error);
    }

    [Fact]
    public async Task Prompt_template_and_system_prompt_reach_the_model()
    {
        var target = Http(_primary, "primary") with
        {
            Prompt = new ModelPrompt("llama3.1") { System = "You summarise.", Template = "Summarise: {input}" },
        };

        await Collect.CallAsync(Caller(target), "a long text");

        RecordedRequest sent = Assert.Single(_primary.Requests);
        Assert.Equal("llama3.1", sent.Json.GetProperty("model").GetString());
        var messages = sent.Json.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal("You summarise.", messages[0].GetProperty("content").GetString());
        Assert.Equal("Summarise: a long text", messages[1].GetProperty("content").GetString());
    }

    [Fact]
    public async Task Hard_timeout_mid_stream_ends_the_call_degraded_with_the_partial_text()
    {
        _primary.Enqueue(FakeReply.Stream("Partial", " answer", " then", " silence") with { StallAfterTokens = 2 });
        var policy = Fast with { Timeout = TimeSpan.FromSeconds(2) };

        var (partials, result) = await Collect.CallAsync(Caller(Http(_primary, "primary", policy), Scripted("must not be used")), "q");

        Assert.True(result.Degraded, result.ToString());
        Assert.Equal(DegradedReason.Timeout, result.Reason);
        Assert.Equal("Partial answer", result.Text);
        Assert.Equal(2, partials.Count);
        Assert.Equal("primary", result.Model);
        Assert.Equal(1, result.Attempts);
        Assert.Contains("timed out after 2 s", result.Error, StringComparison.Ordinal);
        Assert.Equal(1, _primary.RequestCount);
        await _primary.ClientAbandonedStallAsync(Collect.Patience);
    }

    [Fact]
    public async Task A_stall_longer_than_the_idle_timeout_ends_the_call_long_before_the_hard_timeout()
    {
        _primary.Enqueue(FakeReply.Stream("Half", " a", " reply") with { StallAfterTokens = 2 });
        var policy = Fast with { Timeout = TimeSpan.FromSeconds(60), IdleTimeout = TimeSpan.FromMilliseconds(300) };
        using var notHard = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary", policy)), "q", ct: notHard.Token);

        Assert.Equal(DegradedReason.Stalled, result.Reason);
        Assert.Equal("Half a", result.Text);
        Assert.Contains("no token for 300 ms", result.Error, StringComparison.Ordinal);
        await _primary.ClientAbandonedStallAsync(Collect.Patience);
    }

    [Fact]
    public async Task Transient_failures_before_the_first_token_are_retried_until_success()
    {
        _primary.Enqueue(FakeReply.Error(500), FakeReply.Error(503), FakeReply.Stream("third", " time", " lucky"));

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("third time lucky", result.Text);
        Assert.Equal(3, result.Attempts);
        Assert.Equal(3, _primary.RequestCount);
    }

    [Fact]
    public async Task A_connection_reset_before_any_token_is_retried()
    {
        _primary.Enqueue(new FakeReply { ResetAfterTokens = 0 }, FakeReply.Stream("recovered"));

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("recovered", result.Text);
        Assert.Equal(2, result.Attempts);
    }

    [Fact]
    public async Task A_slow_first_token_past_the_first_token_timeout_is_retried()
    {
        _primary.Enqueue(
            FakeReply.Stream("too", " late") with { FirstTokenDelay = TimeSpan.FromSeconds(30) },
            FakeReply.Stream("on", " time"));
        var policy = Fast with { FirstTokenTimeout = TimeSpan.FromSeconds(1) };

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary", policy)), "q");

        Assert.False(result.Degraded);
        Assert.Equal("on time", result.Text);
        Assert.Equal(2, result.Attempts);
    }

    [Fact]
    public async Task A_slow_first_token_within_the_timeout_is_simply_waited_for()
    {
        _primary.Enqueue(FakeReply.Stream("worth", " the", " wait") with { FirstTokenDelay = TimeSpan.FromMilliseconds(300) });

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("worth the wait", result.Text);
        Assert.Equal(1, result.Attempts);
    }

    [Fact]
    public async Task No_retry_and_no_fallback_after_the_first_token_the_partial_text_ends_degraded()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _primary.Enqueue(FakeReply.Stream("Already", " streamed", " never") with { ResetAfterTokens = 2, ResetGate = gate.Task });
        _primary.DefaultReply = FakeReply.Stream("a", " duplicate");

        var (partials, result) = await Collect.CallAsync(
            Caller(Http(_primary, "primary"), Http(_secondary, "secondary")),
            "q",
            onPartial: p =>
            {
                if (p.Seq == 2)
                {
                    gate.SetResult();
                }

                return Task.CompletedTask;
            });

        Assert.True(result.Degraded, result.ToString());
        Assert.Equal(DegradedReason.Error, result.Reason);
        Assert.Equal("Already streamed", result.Text);
        Assert.Equal(2, partials.Count);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(1, _primary.RequestCount);
        Assert.Equal(0, _secondary.RequestCount);
    }

    [Fact]
    public async Task A_permanent_failure_goes_straight_to_the_fallback_without_retrying()
    {
        _primary.Enqueue(FakeReply.Error(401, "invalid api key"));
        _secondary.Enqueue(FakeReply.Stream("from", " the", " fallback"));

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary"), Http(_secondary, "secondary")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("from the fallback", result.Text);
        Assert.Equal("secondary", result.Model);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(1, _primary.RequestCount);
        Assert.Equal(1, _secondary.RequestCount);
    }

    [Fact]
    public async Task The_fallback_is_used_once_the_primary_has_spent_its_retries()
    {
        _primary.DefaultReply = FakeReply.Error(503);

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary"), Scripted("fallback reply")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("fallback reply", result.Text);
        Assert.Equal("scripted:fallback", result.Model);
        Assert.Equal(3, _primary.RequestCount);
        Assert.Equal(4, result.Attempts);
    }

    [Fact]
    public async Task A_primary_that_times_out_before_its_first_token_hands_over_to_the_fallback()
    {
        _primary.Enqueue(FakeReply.Stream("never") with { FirstTokenDelay = TimeSpan.FromSeconds(30) });
        // Long enough that the request surely reaches the fake server on a loaded machine (the count below).
        var policy = Fast with { Timeout = TimeSpan.FromSeconds(3) };

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary", policy), Scripted("fallback in time")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("fallback in time", result.Text);
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task Malformed_sse_is_not_retried_and_the_fallback_answers()
    {
        _primary.Enqueue(new FakeReply { RawAfterTokens = "data: {not json}\n\n" });

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary"), Scripted("clean answer")), "q");

        Assert.False(result.Degraded);
        Assert.Equal("clean answer", result.Text);
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task Malformed_sse_without_a_fallback_ends_degraded_with_a_clear_error()
    {
        _primary.Enqueue(new FakeReply { RawAfterTokens = "data: {not json}\n\n" });

        var (partials, result) = await Collect.CallAsync(Caller(Http(_primary, "primary")), "q");

        Assert.Empty(partials);
        Assert.True(result.Degraded, result.ToString());
        Assert.Equal(DegradedReason.Error, result.Reason);
        Assert.Equal("", result.Text);
        Assert.StartsWith("primary: malformed event stream", result.Error, StringComparison.Ordinal);
        Assert.Contains("{not json}", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_every_target_fails_the_result_is_degraded_and_names_the_last_failure()
    {
        _primary.DefaultReply = FakeReply.Error(500);
        _secondary.DefaultReply = FakeReply.Error(404, "model not found");
        var noRetry = Fast with { MaxRetries = 0 };

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary", noRetry), Http(_secondary, "secondary", noRetry)), "q");

        Assert.True(result.Degraded, result.ToString());
        Assert.Equal(DegradedReason.Error, result.Reason);
        Assert.Equal("secondary", result.Model);
        Assert.Equal(2, result.Attempts);
        Assert.Contains("model not found", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_retry_that_would_start_after_the_deadline_is_skipped_for_the_fallback()
    {
        // Retry-After far beyond the primary's deadline: waiting for it would only burn the time.
        _primary.DefaultReply = FakeReply.Error(429) with { RetryAfterSeconds = 120 };
        var policy = Fast with { Timeout = TimeSpan.FromSeconds(5) };

        var (_, result) = await Collect.CallAsync(Caller(Http(_primary, "primary", policy), Scripted("served elsewhere")), "q");

        Assert.Equal("served elsewhere", result.Text);
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task A_slow_reader_of_partials_is_not_mistaken_for_a_stalled_model()
    {
        // The idle timer runs only while waiting on the model, not while the worker publishes a partial: the worker
        // takes three idle timeouts over each partial (on a manual clock, so the idle timer fires if it is armed).
        var clock = new ManualTimeProvider();
        var target = new ModelTarget("scripted", new ScriptedModel(["one two three"]), new ModelPrompt("s"), Fast with { IdleTimeout = TimeSpan.FromMilliseconds(100) });

        var (_, result) = await Collect.CallAsync(new ResilientModelCaller([target], clock), "q", onPartial: _ =>
        {
            clock.Advance(TimeSpan.FromMilliseconds(300));
            return Task.CompletedTask;
        });

        Assert.False(result.Degraded, result.Error);
        Assert.Equal("one two three", result.Text);
    }

    [Fact]
    public async Task Cancelling_the_callers_token_stops_the_call_without_a_final_result()
    {
        _primary.Enqueue(FakeReply.Stream("a", "b") with { StallAfterTokens = 1 });
        using var cts = new CancellationTokenSource();
        var updates = new List<ModelCallUpdate>();

        async Task Read()
        {
            await foreach (ModelCallUpdate update in Caller(Http(_primary, "primary"), Scripted("no")).CallAsync("q", cts.Token))
            {
                updates.Add(update);
                await cts.CancelAsync();
            }
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Read().WaitAsync(Collect.Patience));
        Assert.IsType<ModelPartial>(Assert.Single(updates));
        await _primary.ClientAbandonedStallAsync(Collect.Patience);
    }

    [Fact]
    public async Task An_adapter_that_throws_unexpectedly_still_yields_a_degraded_final()
    {
        var broken = new ModelTarget("broken", new ThrowingAdapter(), new ModelPrompt("b"), Fast);

        var (_, result) = await Collect.CallAsync(Caller(broken), "q");

        Assert.True(result.Degraded, result.ToString());
        Assert.Contains("InvalidOperationException: adapter bug", result.Error, StringComparison.Ordinal);
        Assert.Equal(1, result.Attempts);
    }

    [Theory]
    [InlineData(0, 0.0, 100)]
    [InlineData(0, 0.999, 200)]
    [InlineData(1, 0.0, 200)]
    [InlineData(3, 0.0, 800)]
    [InlineData(10, 0.999, 2000)]
    public void Backoff_is_exponential_jittered_within_half_to_full_and_capped(int retry, double draw, int expectedMs)
    {
        var policy = new ModelCallPolicy { BackoffBase = TimeSpan.FromMilliseconds(200), BackoffMax = TimeSpan.FromSeconds(2) };

        Assert.Equal(expectedMs, policy.Backoff(retry, draw).TotalMilliseconds, tolerance: 1);
    }

    [Fact]
    public void An_invalid_policy_is_refused_when_the_caller_is_built()
    {
        var target = Scripted("x", new ModelCallPolicy { Timeout = TimeSpan.Zero });

        var ex = Assert.Throws<ArgumentException>(() => new ResilientModelCaller([target]));

        Assert.Contains("Timeout must be positive", ex.Message, StringComparison.Ordinal);
    }

    private sealed class ThrowingAdapter : IModelAdapter
    {
        public IAsyncEnumerable<ModelChunk> StreamAsync(ModelRequest request, CancellationToken ct) =>
            throw new InvalidOperationException("adapter bug");
    }
}
