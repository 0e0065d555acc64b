using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using FastRelay.Client;
using FastRelay.Client.Jobs;
using FastRelay.Integration.Tests.Infrastructure;
using FastRelay.Protocol;
using FastRelay.Sidecar.Agents;
using FastRelay.Sidecar.Configuration;
using FastRelay.Sidecar.Running;
using Xunit.Abstractions;

namespace FastRelay.Integration.Tests;

/// <summary>
/// The orchestration sidecar end to end: a real relay, the sidecar's agents (in this process, or as the real
/// <c>fastrelay-sidecar</c> process where a test kills it), and requesters using the job API or <c>fastrelay ask</c>.
/// </summary>
public sealed class SidecarTests(ITestOutputHelper output)
{
    /// <summary>The sidecar's log, in the test's output (shown when a test fails).</summary>
    private SidecarLog Log => new(new OutputWriter(output));

    private sealed class OutputWriter(ITestOutputHelper output) : TextWriter
    {
        public override Encoding Encoding => Encoding.UTF8;

        public override void WriteLine(string? value)
        {
            try
            {
                output.WriteLine(value ?? "");
            }
            catch (InvalidOperationException)
            {
                // The test is over; a late line from a background worker has nowhere to go.
            }
        }
    }

    private static SidecarConfig EchoConfig(int concurrency = 2, int tokenDelayMs = 5, int leaseMs = 1000, string prefix = "You said: ") =>
        SidecarConfig.Parse($$"""
            {
              "jobs": { "leaseMs": {{leaseMs}}, "drainTimeoutMs": 500 },
              "agents": [ {
                "name": "echo", "consumes": "jobs.echo", "concurrency": {{concurrency}},
                "model": { "adapter": "scripted", "echoPrefix": "{{prefix}}", "tokenDelayMs": {{tokenDelayMs}} }
              } ]
            }
            """);

    private static async Task<List<JobUpdate>> AskAsync(FastRelayClient client, string input, string topic = "jobs.echo", JobSubmitOptions? options = null)
    {
        var updates = new List<JobUpdate>();
        using var timeout = new CancellationTokenSource(ClientSignals.Timeout);
        await foreach (var update in client.SubmitJobAsync(topic, input, options, timeout.Token))
        {
            updates.Add(update);
        }

        return updates;
    }

    /// <summary>The events of a reply topic up to and including the first final event.</summary>
    private static async Task<List<RelayEvent>> ReadUntilFinalAsync(Subscription replies)
    {
        var events = new List<RelayEvent>();
        using var timeout = new CancellationTokenSource(ClientSignals.Timeout);
        await foreach (var e in replies.ReadAllAsync(timeout.Token))
        {
            events.Add(e);
            if ((e.Flags & EventFlags.Final) != 0)
            {
                return events;
            }
        }

        throw new InvalidOperationException("the reply stream ended without a final event");
    }

    [Fact]
    public async Task A_job_streams_partial_events_then_exactly_one_final_with_the_whole_reply()
    {
        await using var relay = TestRelay.Start();
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(EchoConfig(), models, Log, relay.UnixUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);

        // Read the reply topic raw as well, to check the wire: partial flags, consecutive seqs, one final.
        var raw = await client.SubscribeAsync("replies.job-1");
        var updates = await AskAsync(client, "hello relay world, how are you", options: new JobSubmitOptions { JobId = "job-1", ReplyTopic = "replies.job-1" });

        var result = Assert.IsType<JobResult>(updates[^1]);
        Assert.Equal("You said: hello relay world, how are you", result.Text);
        Assert.False(result.Degraded);
        Assert.Equal("echo", result.Agent);
        Assert.Equal("scripted:echo", result.Model);
        Assert.Equal("job-1", result.JobId);
        var tokens = updates.OfType<JobToken>().ToList();
        Assert.True(tokens.Count >= 3, $"the reply streams word by word ({tokens.Count} partials)");
        Assert.Equal(result.Text, string.Concat(tokens.Select(t => t.Text)));
        Assert.Single(updates.OfType<JobResult>());

        var events = await raw.TakeAsync(tokens.Count + 1);
        Assert.All(events[..^1], e => Assert.True((e.Flags & EventFlags.Partial) != 0));
        Assert.True((events[^1].Flags & EventFlags.Final) != 0);
        Assert.All(events, e => Assert.Equal("job-1", e.PrevEventId));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (ulong)i), events.Select(e => e.Seq));
        await sidecar.Stats.WaitUntilAsync(s => s.Acknowledged == 1).Within();
        Assert.Equal((1, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.echo", "echo"));
    }

    [Fact]
    public async Task Jobs_spread_over_two_sidecars_and_each_is_answered_once()
    {
        await using var relay = TestRelay.Start();
        using var models = new ModelChainFactory();
        await using var first = await SidecarHost.StartAsync(EchoConfig(concurrency: 2), models, Log, relay.UnixUri);
        await using var second = await SidecarHost.StartAsync(EchoConfig(concurrency: 2), models, Log, relay.TcpUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);

        const int Jobs = 16;
        var replies = await Task.WhenAll(Enumerable.Range(0, Jobs).Select(i => AskAsync(client, $"question {i}")));

        for (int i = 0; i < Jobs; i++)
        {
            Assert.Equal($"You said: question {i}", Assert.Single(replies[i].OfType<JobResult>()).Text);
        }

        Assert.Equal(Jobs, first.Stats.Started + second.Stats.Started);
        Assert.True(first.Stats.Started > 0 && second.Stats.Started > 0, $"both members work ({first.Stats.Started} / {second.Stats.Started})");
        Assert.Equal(0, first.Stats.Restarted + second.Stats.Restarted);
    }

    [Fact]
    public async Task A_sidecar_process_killed_mid_job_hands_the_job_over_after_its_lease_and_the_requester_gets_one_final()
    {
        await using var relay = TestRelay.Start();
        string dir = Directory.CreateTempSubdirectory("fastrelay-sidecar-").FullName;
        string configPath = Path.Combine(dir, "agents.json");
        const string Config = """
            {
              "jobs": { "leaseMs": 1500, "drainTimeoutMs": 500 },
              "agents": [ {
                "name": "echo", "consumes": "jobs.echo", "concurrency": 2,
                "model": { "adapter": "scripted", "echoPrefix": "You said: ", "tokenDelayMs": 60 }
              } ]
            }
            """;
        await File.WriteAllTextAsync(configPath, Config);
        const string Question = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen";

        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var replies = await client.SubscribeAsync("replies.crash");
        await using (var process = await SidecarProcess.StartAsync(configPath, relay.UnixUri))
        {
            byte[] job = JobWire.EncodeRequest(new JobRequest(Question) { Id = "crash-1", ReplyTopic = "replies.crash" });
            await client.PublishAsync("jobs.echo", job, new PublishOptions { MessageId = "crash-1" });

            // The process is mid-reply (it streamed a partial): kill it without any chance to clean up.
            var firstPartial = await replies.NextAsync();
            Assert.True((firstPartial.Flags & EventFlags.Partial) != 0);
            process.Kill();
        }

        // A new sidecar gets the job back from the group (the dead member's connection ended), waits out the dead
        // owner's lease in the KV store, takes the job over and starts the reply again.
        using var models = new ModelChainFactory();
        await using var successor = await SidecarHost.StartAsync(SidecarConfig.Parse(Config), models, Log, relay.UnixUri);
        var events = await ReadUntilFinalAsync(replies);

        var updates = events.Select(e => JobWire.TryDecodeReply(e, out var u, out string? error) ? u : throw new InvalidDataException(error)).ToList();
        int restartAt = updates.FindIndex(u => u is JobRestarted);
        Assert.True(restartAt >= 0, "the requester is told the reply starts again");
        Assert.Equal(2, ((JobRestarted)updates[restartAt]).Attempt);
        var final = Assert.IsType<JobResult>(updates[^1]);
        Assert.Equal("You said: " + Question, final.Text);
        Assert.False(final.Degraded);
        Assert.Equal(final.Text, string.Concat(updates.Skip(restartAt + 1).OfType<JobToken>().Select(t => t.Text)));
        Assert.Equal(1, successor.Stats.Restarted);

        // Exactly one final: the job is acknowledged, the group holds nothing that could be delivered again, and the
        // reply topic carries nothing after the final (a marker published now is the next event).
        await successor.Stats.WaitUntilAsync(s => s.Acknowledged == 1).Within();
        Assert.Equal((1, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.echo", "echo"));
        await client.PublishAsync("replies.crash", "marker"u8.ToArray());
        var next = await replies.NextAsync();
        Assert.Equal("marker", Encoding.UTF8.GetString(next.Payload.Span));
        Assert.Equal(1, successor.Stats.Completed);
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task On_SIGTERM_a_sidecar_finishes_the_job_in_progress_before_it_exits()
    {
        await using var relay = TestRelay.Start();
        string dir = Directory.CreateTempSubdirectory("fastrelay-sidecar-").FullName;
        string configPath = Path.Combine(dir, "agents.json");
        await File.WriteAllTextAsync(configPath, """
            {
              "jobs": { "drainTimeoutMs": 20000 },
              "agents": [ { "name": "echo", "consumes": "jobs.echo",
                            "model": { "adapter": "scripted", "echoPrefix": "You said: ", "tokenDelayMs": 40 } } ]
            }
            """);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var replies = await client.SubscribeAsync("replies.drain");
        await using var process = await SidecarProcess.StartAsync(configPath, relay.UnixUri);
        byte[] job = JobWire.EncodeRequest(new JobRequest("one two three four five six seven eight") { Id = "drain-1", ReplyTopic = "replies.drain" });
        await client.PublishAsync("jobs.echo", job);
        await replies.NextAsync(); // the first partial: the job is in progress

        process.Terminate();

        RelayEvent final = (await ReadUntilFinalAsync(replies))[^1];
        Assert.True(JobWire.TryDecodeReply(final, out var update, out _));
        Assert.Equal("You said: one two three four five six seven eight", Assert.IsType<JobResult>(update).Text);
        Assert.Equal(0, await process.ExitCodeAsync());
        Assert.Contains(process.Log, line => line.Contains("acknowledged 1, started 1, completed 1", StringComparison.Ordinal));
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task A_job_still_running_when_the_drain_times_out_is_handed_back_without_waiting_for_its_lease()
    {
        await using var relay = TestRelay.Start();
        string dir = Directory.CreateTempSubdirectory("fastrelay-sidecar-").FullName;
        string configPath = Path.Combine(dir, "agents.json");
        // A lease far longer than the test's timeout: the successor can only finish in time if the draining sidecar
        // released the job.
        const string Config = """
            {
              "jobs": { "leaseMs": 120000, "drainTimeoutMs": 100 },
              "agents": [ { "name": "echo", "consumes": "jobs.echo",
                            "model": { "adapter": "scripted", "echoPrefix": "You said: ", "tokenDelayMs": 200 } } ]
            }
            """;
        await File.WriteAllTextAsync(configPath, Config);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var replies = await client.SubscribeAsync("replies.handback");
        await using (var process = await SidecarProcess.StartAsync(configPath, relay.UnixUri))
        {
            byte[] job = JobWire.EncodeRequest(new JobRequest("a b c d e f g h i j k l m n o p") { Id = "handback-1", ReplyTopic = "replies.handback" });
            await client.PublishAsync("jobs.echo", job);
            await replies.NextAsync();
            process.Terminate();
            Assert.Equal(0, await process.ExitCodeAsync());
            Assert.Contains(process.Log, line => line.Contains("stopped by shutdown; handed back", StringComparison.Ordinal));
        }

        using var models = new ModelChainFactory();
        await using var successor = await SidecarHost.StartAsync(SidecarConfig.Parse(Config.Replace("\"tokenDelayMs\": 200", "\"tokenDelayMs\": 1", StringComparison.Ordinal)),
            models, Log, relay.UnixUri);
        RelayEvent final = (await ReadUntilFinalAsync(replies))[^1];
        Assert.True(JobWire.TryDecodeReply(final, out var update, out _));
        Assert.Equal("You said: a b c d e f g h i j k l m n o p", Assert.IsType<JobResult>(update).Text);
        Assert.Equal(1, successor.Stats.Restarted);
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task Of_two_workers_holding_one_job_only_the_lease_holder_can_decide_its_final()
    {
        await using var relay = TestRelay.Start();
        await using var a = await FastRelayClient.ConnectAsync(relay.TcpUri);
        await using var b = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var settings = JobSettings.Default with { Lease = TimeSpan.FromMilliseconds(400) };
        var ledgerA = new JobLedger(a, settings, "worker-a");
        var ledgerB = new JobLedger(b, settings, "worker-b");
        string key = JobKeys.For("g", "agent", "job.with.dots and spaces");

        var claimA = await ledgerA.ClaimAsync(key, CancellationToken.None).Within();
        Assert.Equal(ClaimOutcome.Claimed, claimA.Outcome);
        Assert.Equal(1, claimA.Attempt);

        // A stops renewing (stalled): B waits for A's lease to run out on the relay's clock, then takes over.
        var claimB = await ledgerB.ClaimAsync(key, CancellationToken.None).Within();
        Assert.Equal(ClaimOutcome.Claimed, claimB.Outcome);
        Assert.Equal(2, claimB.Attempt);
        Assert.Equal("worker-a", claimB.PreviousOwner);

        // A wakes up and tries to record its final: refused. B's succeeds; a third worker then only sees the final.
        var finalA = new JobState(JobPhase.Final, "worker-a", 1, 0, "a"u8.ToArray());
        Assert.Null(await ledgerA.TryWriteAsync(key, finalA, settings.KeepResult, claimA.Version, CancellationToken.None).Within());
        var finalB = new JobState(JobPhase.Final, "worker-b", 2, 0, "b"u8.ToArray());
        Assert.NotNull(await ledgerB.TryWriteAsync(key, finalB, settings.KeepResult, claimB.Version, CancellationToken.None).Within());
        var claimC = await new JobLedger(a, settings, "worker-c").ClaimAsync(key, CancellationToken.None).Within();
        Assert.Equal(ClaimOutcome.Final, claimC.Outcome);
        Assert.Equal("b", Encoding.UTF8.GetString(claimC.Final!));
    }

    [Fact]
    public async Task A_slow_model_fills_the_group_so_job_publishers_get_backoff_while_other_topics_keep_flowing()
    {
        await using var relay = TestRelay.Start(o =>
        {
            o.Groups.PendingCapacity = 2;
            o.Groups.Lease = TimeSpan.FromMinutes(5);
        });
        using var models = new ModelChainFactory();
        // One worker, a model that takes ~10 s per reply: the member's single credit stays in use throughout.
        var config = EchoConfig(concurrency: 1, tokenDelayMs: 500, leaseMs: 5000);
        await using var sidecar = await SidecarHost.StartAsync(config, models, Log, relay.UnixUri);
        await using var jobs = await FastRelayClient.ConnectAsync(relay.WebSocketUri, new FastRelayClientOptions
        {
            PublishRetry = new PublishRetryOptions { MaxAttempts = 1 },
        });
        byte[] job = JobWire.EncodeRequest(new JobRequest("a b c d e f g h i j k l m n o p q r s t"));

        FastRelayBackoffException? backoff = null;
        int accepted = 0;
        for (int i = 0; i < 10 && backoff is null; i++)
        {
            try
            {
                await jobs.PublishAsync("jobs.echo", job);
                accepted++;
            }
            catch (FastRelayBackoffException ex)
            {
                backoff = ex;
            }
        }

        Assert.NotNull(backoff);
        Assert.Equal(3, accepted); // one in the worker's hands, two waiting: the group's pending capacity
        Assert.True(backoff.RetryAfter > TimeSpan.Zero);

        // Ordinary pub/sub on the same relay is untouched.
        await using var chatter = await FastRelayClient.ConnectAsync(relay.TcpUri);
        var room = await chatter.SubscribeAsync("chat.lobby");
        for (int i = 0; i < 200; i++)
        {
            await jobs.PublishAsync("chat.lobby", Encoding.UTF8.GetBytes($"line {i}"));
        }

        var lines = await room.TakeAsync(200);
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"line {i}"), lines.Select(e => Encoding.UTF8.GetString(e.Payload.Span)));

        // ...while the group is still full: the next job is still pushed back.
        Assert.Equal((1, 2, 1), await relay.Engine.GetGroupStateAsync(0, "jobs.echo", "echo"));
        await Assert.ThrowsAsync<FastRelayBackoffException>(() => jobs.PublishAsync("jobs.echo", job));
        Assert.Equal(1, sidecar.Stats.Started);
    }

    [Fact]
    public async Task A_model_that_stalls_mid_reply_ends_in_one_degraded_final_carrying_the_partial_text()
    {
        await using var relay = TestRelay.Start();
        // Every token comes 1.5 s after the one before; once the reply has begun, the idle timeout is 300 ms: it stalls after one word.
        var config = SidecarConfig.Parse("""
            {
              "agents": [ {
                "name": "echo", "consumes": "jobs.echo",
                "model": { "adapter": "scripted", "script": ["first second third"], "tokenDelayMs": 1500,
                           "timeoutMs": 8000, "idleTimeoutMs": 300, "retries": 0 }
              } ]
            }
            """);
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(config, models, Log, relay.UnixUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var raw = await client.SubscribeAsync("replies.stall");

        var updates = await AskAsync(client, "ignored", options: new JobSubmitOptions { JobId = "stall", ReplyTopic = "replies.stall" });

        var final = Assert.IsType<JobResult>(updates[^1]);
        Assert.True(final.Degraded);
        Assert.Equal("stalled", final.Reason);
        Assert.Equal("first ", final.Text);
        Assert.Equal("first ", string.Concat(updates.OfType<JobToken>().Select(t => t.Text)));
        var events = await raw.TakeAsync(2);
        Assert.Equal(EventFlags.Final | EventFlags.Degraded, events[^1].Flags & (EventFlags.Final | EventFlags.Degraded));
    }

    [Fact]
    public async Task An_invalid_job_gets_a_degraded_final_naming_the_problem_and_is_not_redelivered()
    {
        await using var relay = TestRelay.Start();
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(EchoConfig(), models, Log, relay.UnixUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var replies = await client.SubscribeAsync("replies.bad");

        // A map with a reply topic but no input; then bytes that are not a job at all.
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePack.MessagePackWriter(buffer);
        writer.WriteMapHeader(1);
        writer.Write("reply");
        writer.Write("replies.bad");
        writer.Flush();
        await client.PublishAsync("jobs.echo", buffer.WrittenMemory, new PublishOptions { MessageId = "bad-1" });
        await client.PublishAsync("jobs.echo", "not messagepack"u8.ToArray());

        var e = await replies.NextAsync();
        Assert.True(JobWire.TryDecodeReply(e, out var update, out _));
        var final = Assert.IsType<JobResult>(update);
        Assert.True(final.Degraded);
        Assert.Equal("invalid_job", final.Reason);
        Assert.Contains("no \"input\"", final.Error);
        Assert.Equal("bad-1", final.JobId);

        await sidecar.Stats.WaitUntilAsync(s => s.Invalid == 2 && s.Acknowledged == 2).Within();
        Assert.Equal((1, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.echo", "echo"));
    }

    [Fact]
    public async Task A_chain_of_two_agents_answers_once_with_the_last_agents_output()
    {
        await using var relay = TestRelay.Start();
        var config = SidecarConfig.Parse("""
            {
              "agents": [
                { "name": "draft", "consumes": "jobs.draft", "emits": { "topic": "jobs.polish", "reply": false },
                  "model": { "adapter": "scripted", "echoPrefix": "draft of " } },
                { "name": "polish", "consumes": "jobs.polish",
                  "model": { "adapter": "scripted", "echoPrefix": "polished " } }
              ]
            }
            """);
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(config, models, Log, relay.UnixUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);

        var updates = await AskAsync(client, "a poem", topic: "jobs.draft");

        var final = Assert.Single(updates.OfType<JobResult>());
        Assert.Equal("polished draft of a poem", final.Text);
        Assert.Equal("polish", final.Agent);
        Assert.Equal(final.Text, string.Concat(updates.OfType<JobToken>().Select(t => t.Text)));
        await sidecar.Stats.WaitUntilAsync(s => s.Acknowledged == 2).Within();
    }

    [Fact]
    public async Task An_agent_on_a_pattern_answers_jobs_on_every_matching_topic()
    {
        await using var relay = TestRelay.Start();
        var config = SidecarConfig.Parse("""
            { "agents": [ { "name": "any", "consumes": "jobs.*", "concurrency": 1,
                            "model": { "adapter": "scripted", "echoPrefix": "got " } } ] }
            """);
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(config, models, Log, relay.UnixUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);

        var answers = await Task.WhenAll(
            AskAsync(client, "summary", topic: "jobs.summarize"),
            AskAsync(client, "translation", topic: "jobs.translate"),
            AskAsync(client, "plan", topic: "jobs.plan"));

        Assert.Equal(["got summary", "got translation", "got plan"], answers.Select(a => Assert.Single(a.OfType<JobResult>()).Text));
        await sidecar.Stats.WaitUntilAsync(s => s.Acknowledged == 3).Within();
        Assert.Equal(3, sidecar.Stats.Started);
    }

    [Fact]
    public async Task Jobs_with_one_ordering_key_run_one_at_a_time_in_order_while_the_agent_has_spare_workers()
    {
        await using var relay = TestRelay.Start();
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(EchoConfig(concurrency: 3, tokenDelayMs: 3), models, Log, relay.UnixUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);
        var replies = await client.SubscribeAsync("replies.conversation");

        const int Jobs = 5;
        for (int i = 0; i < Jobs; i++)
        {
            byte[] job = JobWire.EncodeRequest(new JobRequest($"turn {i} of the same conversation") { Id = $"turn-{i}", ReplyTopic = "replies.conversation" });
            await client.PublishAsync("jobs.echo", job, new PublishOptions { Key = "conversation-7" });
        }

        // One job at a time: each job's partials and final come before anything of the next job, in submit order.
        var order = new List<string>();
        var finals = 0;
        using var timeout = new CancellationTokenSource(ClientSignals.Timeout);
        await foreach (var e in replies.ReadAllAsync(timeout.Token))
        {
            if (order.Count == 0 || order[^1] != e.PrevEventId)
            {
                order.Add(e.PrevEventId!);
            }

            if ((e.Flags & EventFlags.Final) != 0 && ++finals == Jobs)
            {
                break;
            }
        }

        Assert.Equal(Enumerable.Range(0, Jobs).Select(i => $"turn-{i}"), order);
    }

    [Fact]
    public async Task A_final_the_relay_refuses_for_good_ends_the_job_instead_of_redelivering_it()
    {
        await using var relay = TestRelay.Start(TestRelay.WithTenants);
        static string Token(string client, string[] publish)
        {
            var issued = DateTimeOffset.UtcNow;
            return Core.Tenancy.TokenIssuer.Mint("acme", TestRelay.AcmeSecret, new Core.Tenancy.TenantTokenClaims
            {
                Tenant = "acme",
                ClientId = client,
                Publish = publish,
                Subscribe = [">"],
                IssuedAt = issued,
                ExpiresAt = issued + TimeSpan.FromHours(1),
            });
        }

        // The sidecar may keep job state but not publish on the requester's reply topic.
        string variable = $"FASTRELAY_TEST_SIDECAR_TOKEN_{Guid.NewGuid():N}";
        Environment.SetEnvironmentVariable(variable, Token("fastrelay-sidecar", ["sidecar.jobs.>"]));
        try
        {
            var config = SidecarConfig.Parse($$"""
                { "relay": { "tokenEnv": "{{variable}}" },
                  "agents": [ { "name": "echo", "consumes": "jobs.echo", "model": { "adapter": "scripted", "echoPrefix": "You said: " } } ] }
                """);
            using var models = new ModelChainFactory();
            await using var sidecar = await SidecarHost.StartAsync(config, models, Log, relay.UnixUri);
            await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri, new FastRelayClientOptions { Token = Token("requester", [">"]) });
            var replies = await client.SubscribeAsync("replies.denied");

            byte[] job = JobWire.EncodeRequest(new JobRequest("hello") { Id = "denied-1", ReplyTopic = "replies.denied" });
            await client.PublishAsync("jobs.echo", job);

            await sidecar.Stats.WaitUntilAsync(s => s.Acknowledged == 1).Within();
            Assert.Equal(1, sidecar.Stats.Started);
            await client.PublishAsync("replies.denied", "marker"u8.ToArray());
            Assert.Equal("marker", Encoding.UTF8.GetString((await replies.NextAsync()).Payload.Span)); // nothing got through
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public async Task A_job_longer_than_the_relays_group_lease_stays_with_its_worker_by_reporting_progress()
    {
        // The relay would hand an unacknowledged job to another member after 1.5 s; the model takes ~2.5 s. The sidecar
        // reports progress every 200 ms (a third of its 600 ms job lease), which leaves room for a loaded machine.
        await using var relay = TestRelay.Start(o => o.Groups.Lease = TimeSpan.FromMilliseconds(1500));
        const string Config = """
            {
              "jobs": { "leaseMs": 600, "drainTimeoutMs": 500 },
              "agents": [ { "name": "echo", "consumes": "jobs.echo", "concurrency": 1,
                            "model": { "adapter": "scripted", "echoPrefix": "You said: ", "tokenDelayMs": 250 } } ]
            }
            """;
        using var models = new ModelChainFactory();
        await using var first = await SidecarHost.StartAsync(SidecarConfig.Parse(Config), models, Log, relay.UnixUri);
        await using var second = await SidecarHost.StartAsync(SidecarConfig.Parse(Config), models, Log, relay.TcpUri);
        await using var client = await FastRelayClient.ConnectAsync(relay.WebSocketUri);

        var updates = await AskAsync(client, "one two three four five six seven eight nine ten");

        Assert.Equal("You said: one two three four five six seven eight nine ten", Assert.Single(updates.OfType<JobResult>()).Text);
        Assert.Empty(updates.OfType<JobRestarted>());
        var worker = first.Stats.Started == 1 ? first : second;
        await worker.Stats.WaitUntilAsync(s => s.Acknowledged == 1).Within();
        // Never handed to the other sidecar (it would have waited on the KV lease and then found the job done) nor back
        // to the same one.
        Assert.Equal(1, first.Stats.Started + second.Stats.Started);
        Assert.Equal(0, first.Stats.AlreadyDone + second.Stats.AlreadyDone);
        Assert.Equal(0, first.Stats.Duplicates + second.Stats.Duplicates);
        Assert.Equal((2, 0, 0), await relay.Engine.GetGroupStateAsync(0, "jobs.echo", "echo"));
    }

    [Fact]
    public async Task The_ask_command_prints_the_streamed_reply_and_exits_0()
    {
        await using var relay = TestRelay.Start();
        using var models = new ModelChainFactory();
        await using var sidecar = await SidecarHost.StartAsync(EchoConfig(), models, Log, relay.UnixUri);

        var (code, stdout, stderr) = await RunFastRelayAsync("ask", "--url", relay.WebSocketUri.ToString(), "what", "is", "a", "relay?");

        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("You said: what is a relay?\n", stdout);
        Assert.Contains("[final] agent echo", stderr);
    }

    [Fact]
    public async Task The_ask_command_without_an_agent_says_so_and_exits_3()
    {
        await using var relay = TestRelay.Start();

        var (code, _, stderr) = await RunFastRelayAsync("ask", "--url", relay.TcpUri.ToString(), "--timeout", "1", "anyone?");

        Assert.Equal(3, code);
        Assert.Contains("no reply within 1 s: is an agent consuming jobs.echo?", stderr);
    }

    [Fact]
    public async Task The_sidecar_refuses_to_start_on_a_malformed_configuration_and_names_the_field()
    {
        string dir = Directory.CreateTempSubdirectory("fastrelay-sidecar-").FullName;
        string configPath = Path.Combine(dir, "bad.json");
        await File.WriteAllTextAsync(configPath, """
            { "agents": [ { "name": "echo", "consumes": "jobs.echo", "concurrency": 0,
                            "model": { "adapter": "openai", "model": "m" } } ] }
            """);

        var (code, _, stderr) = await RunAsync("fastrelay-sidecar.dll", "run", "--config", configPath);

        Assert.Equal(2, code);
        Assert.Contains("agents[0].concurrency: must be between 1 and 1024 (was 0)", stderr);
        Assert.Contains("agents[0].model.baseUrl: required for adapter \"openai\"", stderr);
        Directory.Delete(dir, recursive: true);
    }

    private static Task<(int Code, string Stdout, string Stderr)> RunFastRelayAsync(params string[] args) => RunAsync("fastrelay.dll", args);

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string assembly, params string[] args)
    {
        var info = new ProcessStartInfo(SidecarProcess.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, assembly));
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().Within();
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The real <c>fastrelay-sidecar run</c> in its own process (the framework-dependent build next to the tests).</summary>
    private sealed class SidecarProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _log;

        private SidecarProcess(Process process, ConcurrentQueue<string> log)
        {
            _process = process;
            _log = log;
        }

        public static string DotnetHost()
        {
            if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
            {
                return host;
            }

            string? current = Environment.ProcessPath;
            if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
            {
                return current;
            }

            // .../dotnet/shared/Microsoft.NETCore.App/{version}/ → .../dotnet/dotnet
            string root = Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
            string candidate = Path.Combine(root, "dotnet");
            return File.Exists(candidate) ? candidate : "dotnet";
        }

        public static async Task<SidecarProcess> StartAsync(string configPath, Uri relay)
        {
            var info = new ProcessStartInfo(DotnetHost())
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "fastrelay-sidecar.dll"), "run", "--config", configPath, "--relay", relay.ToString() })
            {
                info.ArgumentList.Add(arg);
            }

            var log = new ConcurrentQueue<string>();
            var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var process = new Process { StartInfo = info, EnableRaisingEvents = true };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    log.Enqueue(line);
                    if (line.Contains("agent(s) running", StringComparison.Ordinal))
                    {
                        ready.TrySetResult();
                    }
                }
            };
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    log.Enqueue(line);
                }
            };
            process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException(
                $"fastrelay-sidecar exited with {process.ExitCode} before it was ready:\n{string.Join('\n', log)}"));
            process.Start();
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            var sidecar = new SidecarProcess(process, log);
            try
            {
                await ready.Task.Within();
            }
            catch
            {
                await sidecar.DisposeAsync();
                throw;
            }

            return sidecar;
        }

        /// <summary>What the process wrote so far (standard error and output).</summary>
        public IReadOnlyCollection<string> Log => _log;

        /// <summary>SIGKILL: no drain, no lease release, no goodbye to the relay.</summary>
        public void Kill() => _process.Kill(entireProcessTree: true);

        /// <summary>SIGTERM: what a deploy sends; the sidecar drains.</summary>
        public void Terminate()
        {
            using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) } })!;
            kill.WaitForExit();
        }

        public async Task<int> ExitCodeAsync()
        {
            await _process.WaitForExitAsync().Within();
            _process.WaitForExit(); // flushes the redirected output into Log
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync().Within();
            _process.Dispose();
        }
    }
}
