using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;

namespace FastRelay.Sidecar.Tests.Infrastructure;

/// <summary>A real HTTP/1.1 server on 127.0.0.1 that speaks the OpenAI streaming chat-completions format, with faults.</summary>
/// <remarks>
/// Raw TcpListener, so faults can be what they are on the wire: a TCP reset, a stream cut mid-body, a stall with the
/// connection held open, malformed event framing. Replies are taken from a queue, one per request, falling back to
/// <see cref="DefaultReply"/>. Responses are chunked and end with <c>Connection: close</c>.
/// </remarks>
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<FakeReply> _replies = new();
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly Channel<RecordedRequest> _requestSignals = Channel.CreateUnbounded<RecordedRequest>();
    private readonly Channel<int> _disconnects = Channel.CreateUnbounded<int>();
    private readonly Task _acceptLoop;
    private int _requestCount;

    public FakeOpenAiServer()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        BaseUrl = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _acceptLoop = AcceptLoopAsync();
    }

    public Uri BaseUrl { get; }

    public FakeReply DefaultReply { get; set; } = FakeReply.Stream("Hello", " world", "!");

    public int RequestCount => Volatile.Read(ref _requestCount);

    public IReadOnlyCollection<RecordedRequest> Requests => _requests;

    public FakeOpenAiServer Enqueue(params FakeReply[] replies)
    {
        foreach (FakeReply reply in replies)
        {
            _replies.Enqueue(reply);
        }

        return this;
    }

    /// <summary>Completes when a request arrives (the next one not yet awaited).</summary>
    public async Task<RecordedRequest> NextRequestAsync(TimeSpan timeout) =>
        await _requestSignals.Reader.ReadAsync().AsTask().WaitAsync(timeout);

    /// <summary>Completes when a stalled response sees its client close the connection (the caller gave up on it).</summary>
    public async Task ClientAbandonedStallAsync(TimeSpan timeout) => await _disconnects.Reader.ReadAsync().AsTask().WaitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _acceptLoop;
        }
        catch (Exception ex) when (ex is ObjectDisposedException or SocketException or OperationCanceledException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException or OperationCanceledException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(socket));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        try
        {
            using (socket)
            {
                socket.NoDelay = true;
                await using var stream = new NetworkStream(socket, ownsSocket: false);
                RecordedRequest? request = await ReadRequestAsync(stream);
                if (request is null)
                {
                    return;
                }

                Interlocked.Increment(ref _requestCount);
                _requests.Enqueue(request);
                _requestSignals.Writer.TryWrite(request);
                FakeReply reply = _replies.TryDequeue(out FakeReply? queued) ? queued : DefaultReply;
                await ReplyAsync(socket, stream, reply);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The client went away, or the server is stopping.
        }
    }

    private async Task ReplyAsync(Socket socket, NetworkStream stream, FakeReply reply)
    {
        CancellationToken ct = _stop.Token;
        if (reply.ResetAfterTokens == 0)
        {
            Reset(socket);
            return;
        }

        if (reply.Status != 200)
        {
            byte[] body = Encoding.UTF8.GetBytes(reply.ErrorBody ?? "");
            string retryAfter = reply.RetryAfterSeconds is { } s ? $"Retry-After: {s}\r\n" : "";
            await WriteAsync(stream, $"HTTP/1.1 {reply.Status} Injected\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n{retryAfter}Connection: close\r\n\r\n", ct);
            await stream.WriteAsync(body, ct);
            return;
        }

        await WriteAsync(stream, $"HTTP/1.1 200 OK\r\nContent-Type: {reply.ContentType}\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n", ct);
        await WriteChunkAsync(stream, Event(Chunk(role: "assistant", content: "", finishReason: null)), ct);
        if (reply.FirstTokenDelay > TimeSpan.Zero)
        {
            await Task.Delay(reply.FirstTokenDelay, ct);
        }

        for (int i = 0; i < reply.Tokens.Count; i++)
        {
            if (reply.StallAfterTokens == i)
            {
                await HoldUntilClientLeavesAsync(socket, ct);
                return;
            }

            if (reply.ResetAfterTokens == i)
            {
                await (reply.ResetGate ?? Task.CompletedTask).WaitAsync(ct);
                Reset(socket);
                return;
            }

            if (reply.RawAfterTokens is { } raw && reply.RawAfterTokenCount == i)
            {
                await WriteChunkAsync(stream, raw, ct);
                await WriteAsync(stream, "0\r\n\r\n", ct);
                return;
            }

            if (i > 0 && reply.TokenDelay > TimeSpan.Zero)
            {
                await Task.Delay(reply.TokenDelay, ct);
            }

            await WriteChunkAsync(stream, Event(Chunk(role: null, content: reply.Tokens[i], finishReason: null)), ct);
        }

        if (reply.StallAfterTokens == reply.Tokens.Count)
        {
            await HoldUntilClientLeavesAsync(socket, ct);
            return;
        }

        if (reply.ResetAfterTokens == reply.Tokens.Count)
        {
            await (reply.ResetGate ?? Task.CompletedTask).WaitAsync(ct);
            Reset(socket);
            return;
        }

        if (reply.RawAfterTokens is { } tail && reply.RawAfterTokenCount == reply.Tokens.Count)
        {
            await WriteChunkAsync(stream, tail, ct);
            await WriteAsync(stream, "0\r\n\r\n", ct);
            return;
        }

        if (reply.SendFinishChunk)
        {
            await WriteChunkAsync(stream, Event(Chunk(role: null, content: null, finishReason: reply.FinishReason)), ct);
        }

        if (reply.SendDone)
        {
            await WriteChunkAsync(stream, "data: [DONE]\n\n", ct);
        }

        await WriteAsync(stream, "0\r\n\r\n", ct);
    }

    /// <summary>Sends nothing until the client closes its side (or the server stops), then reports the disconnect.</summary>
    private async Task HoldUntilClientLeavesAsync(Socket socket, CancellationToken ct)
    {
        byte[] buffer = new byte[256];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, ct) > 0)
            {
            }
        }
        catch (SocketException)
        {
        }

        _disconnects.Writer.TryWrite(1);
    }

    private static void Reset(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    private static async Task<RecordedRequest?> ReadRequestAsync(NetworkStream stream)
    {
        var head = new List<byte>(1024);
        byte[] one = new byte[1];
        while (!EndsWithBlankLine(head))
        {
            if (await stream.ReadAsync(one) == 0)
            {
                return null;
            }

            head.Add(one[0]);
        }

        string[] lines = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        string[] requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        int length = headers.TryGetValue("Content-Length", out string? value) ? int.Parse(value, CultureInfo.InvariantCulture) : 0;
        byte[] body = new byte[length];
        await stream.ReadExactlyAsync(body);
        return new RecordedRequest(requestLine[0], requestLine[1], headers, Encoding.UTF8.GetString(body));
    }

    private static bool EndsWithBlankLine(List<byte> b) =>
        b.Count >= 4 && b[^4] == '\r' && b[^3] == '\n' && b[^2] == '\r' && b[^1] == '\n';

    /// <summary>One chat.completion.chunk, as OpenAI writes it.</summary>
    public static string Chunk(string? role, string? content, string? finishReason)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", "chatcmpl-fake");
            json.WriteString("object", "chat.completion.chunk");
            json.WriteNumber("created", 1_700_000_000);
            json.WriteString("model", "fake-model");
            json.WriteStartArray("choices");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            json.WriteStartObject("delta");
            if (role is not null)
            {
                json.WriteString("role", role);
            }

            if (content is not null)
            {
                json.WriteString("content", content);
            }

            json.WriteEndObject();
            json.WriteNull("logprobs");
            if (finishReason is null)
            {
                json.WriteNull("finish_reason");
            }
            else
            {
                json.WriteString("finish_reason", finishReason);
            }

            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static string Event(string data) => $"data: {data}\n\n";

    private static async Task WriteChunkAsync(NetworkStream stream, string data, CancellationToken ct)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(data);
        await WriteAsync(stream, $"{bytes.Length:x}\r\n", ct);
        await stream.WriteAsync(bytes, ct);
        await WriteAsync(stream, "\r\n", ct);
        await stream.FlushAsync(ct);
    }

    private static async Task WriteAsync(NetworkStream stream, string text, CancellationToken ct) =>
        await stream.WriteAsync(Encoding.ASCII.GetBytes(text), ct);
}

/// <summary>A request as the fake server received it.</summary>
public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;
}
