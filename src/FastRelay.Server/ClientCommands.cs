using System.Buffers;
using System.Text;
using System.Text.Json;
using FastRelay.Client;

namespace FastRelay.Server;

/// <summary>The client verbs: <c>pub</c>, <c>sub</c> and <c>ask</c>, over any transport the client speaks.</summary>
internal static class ClientCommands
{
    public const string DefaultUrl = "ws://127.0.0.1:7700/ws";

    public static async Task<int> PublishAsync(CommandArgs args)
    {
        if (args.Positional.Count != 2)
        {
            throw new CommandLineException("usage: fastrelay pub TOPIC DATA [--url URL] [--token TOKEN] [--count N]");
        }

        string topic = args.Positional[0];
        byte[] payload = Encoding.UTF8.GetBytes(args.Positional[1]);
        int count = Math.Max(1, args.GetInt("count", 1));
        await using var client = await ConnectAsync(args).ConfigureAwait(false);
        string? messageId = args.Get("message-id");
        for (int i = 0; i < count; i++)
        {
            var options = new PublishOptions { MessageId = messageId is null ? null : count == 1 ? messageId : $"{messageId}-{i}", PrevEventId = args.Get("prev-event-id") };
            var ack = await client.PublishAsync(topic, payload, options).ConfigureAwait(false);
            WriteJsonLine(w =>
            {
                w.WriteString("topic", topic);
                w.WriteNumber("epoch", ack.Epoch);
                w.WriteNumber("seq", ack.Seq);
                w.WriteBoolean("duplicate", ack.IsDuplicate);
            });
        }

        return 0;
    }

    public static async Task<int> SubscribeAsync(CommandArgs args)
    {
        if (args.Positional.Count != 1)
        {
            throw new CommandLineException("usage: fastrelay sub TOPIC [--url URL] [--token TOKEN] [--count N]");
        }

        int count = args.GetInt("count", 0);
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };

        await using var client = await ConnectAsync(args).ConfigureAwait(false);
        await using var subscription = await client.SubscribeAsync(args.Positional[0], stop.Token).ConfigureAwait(false);
        // Readiness goes to stderr so scripts can wait for it while stdout stays pure event JSON.
        Console.Error.WriteLine($"subscribed to {subscription.Topic} at epoch {subscription.Epoch}, seq {subscription.StartSeq}");
        int received = 0;
        try
        {
            await foreach (var e in subscription.ReadAllAsync(stop.Token).ConfigureAwait(false))
            {
                WriteJsonLine(w => WriteEvent(w, e));
                if (count > 0 && ++received >= count)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }

        return 0;
    }

    public const string DefaultJobTopic = "jobs.echo";

    /// <summary>
    /// <c>fastrelay ask QUESTION</c>: submits a job to the agents on <c>--topic</c> (default <c>jobs.echo</c>, the demo
    /// agent) and prints the reply's tokens as they stream. Exit codes: 0 answered, 1 degraded answer or refused by
    /// the relay, 3 no answer in time, 4 the agents' queue is full (BACKOFF).
    /// </summary>
    public static async Task<int> AskAsync(CommandArgs args)
    {
        if (args.Positional.Count == 0)
        {
            throw new CommandLineException("usage: fastrelay ask QUESTION [--topic TOPIC] [--timeout SECONDS] [--url URL] [--token TOKEN] [--job-id ID] [--key KEY]");
        }

        string topic = args.Get("topic") ?? DefaultJobTopic;
        string question = string.Join(' ', args.Positional);
        var timeout = TimeSpan.FromSeconds(Math.Max(1, args.GetInt("timeout", 60)));
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };

        await using var client = await ConnectAsync(args).ConfigureAwait(false);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
        deadline.CancelAfter(timeout);
        var streamed = new StringBuilder();
        var output = Console.Out;
        try
        {
            await foreach (var update in client.SubmitJobAsync(topic, question, new Client.Jobs.JobSubmitOptions { JobId = args.Get("job-id"), Key = args.Get("key") }, deadline.Token)
                .ConfigureAwait(false))
            {
                switch (update)
                {
                    case Client.Jobs.JobToken token:
                        streamed.Append(token.Text);
                        output.Write(token.Text);
                        output.Flush();
                        break;
                    case Client.Jobs.JobRestarted restarted:
                        streamed.Clear();
                        output.WriteLine();
                        Console.Error.WriteLine($"[restarted, attempt {restarted.Attempt}: {restarted.Reason}]");
                        break;
                    case Client.Jobs.JobResult result:
                        if (streamed.ToString() != result.Text)
                        {
                            // Streaming was off, or pieces were lost over a reconnect: the final carries the whole reply.
                            if (streamed.Length > 0)
                            {
                                output.WriteLine();
                            }

                            output.Write(result.Text);
                        }

                        output.WriteLine();
                        output.Flush();
                        if (result.Degraded)
                        {
                            Console.Error.WriteLine($"[degraded: {result.Reason}] {result.Error} (model {result.Model}, {result.Attempts} attempts)");
                            return 1;
                        }

                        Console.Error.WriteLine($"[final] agent {result.Agent}, model {result.Model}, {result.Attempts} attempt(s), finish {result.FinishReason ?? "-"}");
                        return 0;
                }
            }
        }
        catch (FastRelayBackoffException ex)
        {
            Console.Error.WriteLine($"fastrelay: the agents on {topic} are busy (BACKOFF, retry after {ex.RetryAfter.TotalSeconds:0.#} s): {ex.Reason}");
            return 4;
        }
        catch (FastRelayException ex)
        {
            output.WriteLine();
            Console.Error.WriteLine($"fastrelay: the relay refused or dropped the job: {ex.Message}");
            return 1;
        }
        catch (InvalidDataException ex)
        {
            output.WriteLine();
            Console.Error.WriteLine($"fastrelay: {ex.Message} (is something else publishing on the reply topic?)");
            return 1;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !stop.IsCancellationRequested)
        {
            output.WriteLine();
            Console.Error.WriteLine(streamed.Length == 0
                ? $"fastrelay: no reply within {timeout.TotalSeconds:0} s: is an agent consuming {topic}? (fastrelay-sidecar run --config src/FastRelay.Sidecar/examples/echo-agent.json)"
                : $"fastrelay: the reply did not finish within {timeout.TotalSeconds:0} s");
            return 3;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            output.WriteLine();
            return 130;
        }

        Console.Error.WriteLine("fastrelay: the reply stream ended without a final event");
        return 3;
    }

    private static async Task<FastRelayClient> ConnectAsync(CommandArgs args)
    {
        string url = args.Get("url") ?? Environment.GetEnvironmentVariable("FASTRELAY_URL") ?? DefaultUrl;
        var options = new FastRelayClientOptions
        {
            ClientId = args.Get("client-id"),
            Token = args.Get("token") ?? Environment.GetEnvironmentVariable("FASTRELAY_TOKEN"),
            // `sub` keeps going across relay restarts and deploys, resuming where it left off.
            Reconnect = new ReconnectOptions { Enabled = true },
        };
        try
        {
            return await FastRelayClient.ConnectAsync(url, options).ConfigureAwait(false);
        }
        catch (FastRelayException ex)
        {
            throw new CommandLineException($"could not connect to {url}: {ex.Message}");
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or System.Net.WebSockets.WebSocketException or IOException or TimeoutException)
        {
            throw new CommandLineException($"could not connect to {url}: {ex.Message}");
        }
    }

    private static void WriteEvent(Utf8JsonWriter w, RelayEvent e)
    {
        w.WriteString("topic", e.Topic);
        w.WriteNumber("epoch", e.Epoch);
        w.WriteNumber("seq", e.Seq);
        if (e.ClientId is not null)
        {
            w.WriteString("client_id", e.ClientId);
        }

        if (e.MessageId is not null)
        {
            w.WriteString("message_id", e.MessageId);
        }

        if (e.PrevEventId is not null)
        {
            w.WriteString("prev_event_id", e.PrevEventId);
        }

        w.WriteNumber("timestamp_us", e.Timestamp);
        if (e.Flags != 0)
        {
            w.WriteNumber("flags", (uint)e.Flags);
        }

        if (System.Text.Unicode.Utf8.IsValid(e.Payload.Span))
        {
            w.WriteString("payload", e.Payload.Span);
        }
        else
        {
            w.WriteBase64String("payload_base64", e.Payload.Span);
        }
    }

    private static void WriteJsonLine(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        using var stdout = Console.OpenStandardOutput();
        stdout.Write(buffer.WrittenSpan);
        stdout.WriteByte((byte)'\n');
        stdout.Flush();
    }
}
