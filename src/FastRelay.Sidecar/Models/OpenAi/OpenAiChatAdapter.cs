using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace FastRelay.Sidecar.Models.OpenAi;

/// <summary>Streams chat completions from an OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).</summary>
/// <remarks>
/// <c>POST /v1/chat/completions</c> with <c>"stream": true</c>; the body is read event by event as it arrives
/// (<see cref="ServerSentEventReader"/>) and each <c>data:</c> payload is parsed with source-generated JSON until
/// <c>data: [DONE]</c>. Failures are classified for the caller: 408/425/429/5xx, connection failures and a body cut
/// off before <c>[DONE]</c> are transient; other 4xx, 501/505 and unreadable responses are permanent.
/// </remarks>
public sealed class OpenAiChatAdapter : IModelAdapter
{
    private const int MaxErrorBodyBytes = 4096;
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly HttpClient _http;
    private readonly OpenAiChatOptions _options;
    private readonly Uri _endpoint;

    /// <param name="http">Shared client; <see cref="CreateHttpClient"/> makes one with pooled connections and no client-side timeout.</param>
    public OpenAiChatAdapter(HttpClient http, OpenAiChatOptions options)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        _http = http;
        _options = options;
        _endpoint = options.ChatCompletionsUrl;
    }

    public Uri Endpoint => _endpoint;

    /// <summary>An HttpClient for model servers: pooled keep-alive connections, no HttpClient.Timeout (the call policy owns deadlines).</summary>
    public static HttpClient CreateHttpClient() =>
        new(new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ConnectTimeout = TimeSpan.FromSeconds(5),
            AutomaticDecompression = DecompressionMethods.None,
            EnableMultipleHttp2Connections = true,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };

    public async IAsyncEnumerable<ModelChunk> StreamAsync(ModelRequest request, [EnumeratorCancellation] CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        using HttpResponseMessage response = await SendAsync(request, ct).ConfigureAwait(false);
        Stream body = await OpenBodyAsync(response, ct).ConfigureAwait(false);
        ServerSentEventReader events = new(body, _options.MaxEventBytes);
        try
        {
            string? finishReason = null;
            while (true)
            {
                StreamStep step = await NextStepAsync(events, ct).ConfigureAwait(false);
                switch (step.Kind)
                {
                    case StepKind.Data:
                        finishReason ??= step.FinishReason;
                        if (!string.IsNullOrEmpty(step.Text))
                        {
                            yield return ModelChunk.Delta(step.Text);
                        }

                        break;
                    case StepKind.Done:
                        yield return ModelChunk.Final(finishReason ?? ModelChunk.Stop);
                        yield break;
                    default:
                        // The body ended without [DONE]. A server that sent its finish_reason has finished its reply.
                        if (finishReason is null)
                        {
                            throw new ModelException(ModelFailureKind.Transient, $"the event stream from {_endpoint} ended before data: [DONE]");
                        }

                        yield return ModelChunk.Final(finishReason);
                        yield break;
                }
            }
        }
        finally
        {
            await events.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<HttpResponseMessage> SendAsync(ModelRequest request, CancellationToken ct)
    {
        using HttpRequestMessage message = new(HttpMethod.Post, _endpoint);
        message.Headers.Accept.Add(EventStream);
        if (!string.IsNullOrEmpty(_options.ApiKey))
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.ApiKey);
        }

        byte[] body = JsonSerializer.SerializeToUtf8Bytes(ToWire(request), OpenAiJsonContext.Default.ChatCompletionRequest);
        message.Content = new ByteArrayContent(body);
        message.Content.Headers.ContentType = Json;

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            ModelFailureKind kind = ex.HttpRequestError is HttpRequestError.SecureConnectionError or HttpRequestError.UserAuthenticationError
                ? ModelFailureKind.Permanent
                : ModelFailureKind.Transient;
            throw new ModelException(kind, $"request to {_endpoint} failed: {ex.Message}", ex);
        }
        catch (OperationCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw new ModelException(ModelFailureKind.Transient, $"request to {_endpoint} timed out before the response headers (connect timeout)", ex);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            int status = (int)response.StatusCode;
            string detail = await ReadErrorDetailAsync(response, ct).ConfigureAwait(false);
            throw new ModelException(Classify(status), $"HTTP {status} {response.ReasonPhrase} from {_endpoint}{detail}")
            {
                StatusCode = status,
                RetryAfter = RetryAfter(response),
            };
        }
    }

    private async Task<Stream> OpenBodyAsync(HttpResponseMessage response, CancellationToken ct)
    {
        string? mediaType = response.Content.Headers.ContentType?.MediaType;
        if (mediaType is not null && !mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase))
        {
            string detail = await ReadErrorDetailAsync(response, ct).ConfigureAwait(false);
            throw new ModelException(
                ModelFailureKind.Permanent,
                $"{_endpoint} answered with {mediaType} instead of text/event-stream (does the server support \"stream\": true?){detail}")
            {
                StatusCode = (int)response.StatusCode,
            };
        }

        try
        {
            return await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new ModelException(ModelFailureKind.Transient, $"reading the response from {_endpoint} failed: {ex.Message}", ex);
        }
    }

    private async ValueTask<StreamStep> NextStepAsync(ServerSentEventReader events, CancellationToken ct)
    {
        bool hasEvent;
        try
        {
            hasEvent = await events.ReadEventAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new ModelException(ModelFailureKind.Transient, $"the connection to {_endpoint} broke mid-stream: {ex.Message}", ex);
        }
        catch (OperationCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw new ModelException(ModelFailureKind.Transient, $"the stream from {_endpoint} was aborted: {ex.Message}", ex);
        }

        return hasEvent ? ParseEvent(events.Data, events.EventType) : new StreamStep(StepKind.End, null, null);
    }

    private StreamStep ParseEvent(ReadOnlySpan<byte> data, string? eventType)
    {
        if (data.SequenceEqual("[DONE]"u8))
        {
            return new StreamStep(StepKind.Done, null, null);
        }

        ChatCompletionChunk? chunk;
        try
        {
            chunk = JsonSerializer.Deserialize(data, OpenAiJsonContext.Default.ChatCompletionChunk);
        }
        catch (JsonException ex)
        {
            if (eventType == "error")
            {
                throw new ModelException(ModelFailureKind.Transient, $"{_endpoint} sent an error event: {Excerpt(data)}");
            }

            throw new ModelException(ModelFailureKind.Permanent, $"malformed event stream from {_endpoint}: data is not a chat.completion.chunk ({ex.Message}): {Excerpt(data)}", ex);
        }

        if (chunk is null)
        {
            throw new ModelException(ModelFailureKind.Permanent, $"malformed event stream from {_endpoint}: data is null");
        }

        string? error = ErrorMessage(chunk.Error) ?? (chunk.Object == "error" ? chunk.Message ?? "unknown error" : null);
        if (error is not null || eventType == "error")
        {
            // An error after the headers (vLLM, llama.cpp): the server failed while generating; another attempt may not.
            throw new ModelException(ModelFailureKind.Transient, $"{_endpoint} reported an error mid-stream: {error ?? Excerpt(data)}");
        }

        if (chunk.Choices is null)
        {
            throw new ModelException(ModelFailureKind.Permanent, $"malformed event stream from {_endpoint}: chunk has no \"choices\": {Excerpt(data)}");
        }

        // n = 1: only choice 0 is read. An empty list is a usage-only chunk.
        foreach (ChatCompletionChoice choice in chunk.Choices)
        {
            if (choice.Index == 0)
            {
                return new StreamStep(StepKind.Data, choice.Delta?.Content, choice.FinishReason);
            }
        }

        return new StreamStep(StepKind.Data, null, null);
    }

    private static ChatCompletionRequest ToWire(ModelRequest request)
    {
        var messages = new List<ChatCompletionMessage>(request.Messages.Count + 1);
        if (!string.IsNullOrEmpty(request.SystemPrompt))
        {
            messages.Add(new ChatCompletionMessage { Role = ChatRole.System, Content = request.SystemPrompt });
        }

        foreach (ChatMessage m in request.Messages)
        {
            messages.Add(new ChatCompletionMessage { Role = m.Role, Content = m.Content });
        }

        return new ChatCompletionRequest
        {
            Model = request.Model,
            Messages = messages,
            Temperature = request.Temperature,
            MaxTokens = request.MaxTokens,
        };
    }

    /// <summary>408, 425, 429 and 5xx (but 501, 505) may pass on a retry; every other failure status will not.</summary>
    internal static ModelFailureKind Classify(int status) => status switch
    {
        408 or 425 or 429 => ModelFailureKind.Transient,
        501 or 505 => ModelFailureKind.Permanent,
        >= 500 => ModelFailureKind.Transient,
        _ => ModelFailureKind.Permanent,
    };

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        RetryConditionHeaderValue? retryAfter = response.Headers.RetryAfter;
        if (retryAfter?.Delta is TimeSpan delta)
        {
            return delta;
        }

        if (retryAfter?.Date is DateTimeOffset date)
        {
            TimeSpan wait = date - DateTimeOffset.UtcNow;
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }

        return null;
    }

    /// <summary>": message" from an error body (JSON <c>error.message</c> when there is one), at most 4 KiB read.</summary>
    private static async Task<string> ReadErrorDetailAsync(HttpResponseMessage response, CancellationToken ct)
    {
        byte[] buffer = new byte[MaxErrorBodyBytes];
        int length = 0;
        try
        {
            using Stream stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            int read;
            while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false)) > 0)
            {
                length += read;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The status says enough; the body is a courtesy.
        }

        ReadOnlySpan<byte> body = buffer.AsSpan(0, length).Trim(" \r\n\t"u8);
        if (body.IsEmpty)
        {
            return "";
        }

        try
        {
            ChatCompletionErrorBody? parsed = JsonSerializer.Deserialize(body, OpenAiJsonContext.Default.ChatCompletionErrorBody);
            string? message = ErrorMessage(parsed?.Error) ?? parsed?.Message;
            if (message is not null)
            {
                return ": " + message;
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's HTML page, plain text): show the start of it.
        }

        return ": " + Excerpt(body);
    }

    private static string? ErrorMessage(JsonElement? error) => error switch
    {
        { ValueKind: JsonValueKind.String } e => e.GetString(),
        { ValueKind: JsonValueKind.Object } e => e.TryGetProperty("message", out JsonElement m) && m.ValueKind == JsonValueKind.String
            ? m.GetString()
            : e.GetRawText(),
        { ValueKind: JsonValueKind.Null } => null,
        { } e => e.GetRawText(),
        null => null,
    };

    private static string Excerpt(ReadOnlySpan<byte> data)
    {
        const int Max = 200;
        string text = Encoding.UTF8.GetString(data[..Math.Min(data.Length, Max)]);
        return data.Length > Max ? text + "…" : text;
    }

    private enum StepKind
    {
        Data,
        Done,
        End,
    }

    private readonly record struct StreamStep(StepKind Kind, string? Text, string? FinishReason);
}
