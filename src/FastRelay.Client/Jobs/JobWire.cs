using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using FastRelay.Protocol;
using MessagePack;

namespace FastRelay.Client.Jobs;

/// <summary>
/// The payloads of the job protocol that agents (<c>fastrelay-sidecar</c>) and requesters speak over ordinary topics.
/// </summary>
/// <remarks>
/// <para><b>Job</b> (published to an agent's topic): a MessagePack map <c>{"id": str?, "input": str, "reply": str?}</c>.
/// <c>id</c> names the job (default: the PUB's message_id, else <c>topic@epoch:seq</c>); <c>reply</c> is the topic that
/// receives the reply stream. Unknown keys are ignored.</para>
/// <para><b>Reply stream</b> on the reply topic, every event with <c>prev_event_id</c> = the job id:</para>
/// <list type="bullet">
/// <item>partial events (flag <c>partial</c>): the payload is the new text, raw UTF-8, so that the relay may coalesce
/// consecutive partials for a slow reader by concatenating them (flag <c>coalesced</c>);</item>
/// <item>restart events (no partial/final flag): <c>{"kind": "restart", "job", "attempt", "reason"}</c>: the worker
/// that was streaming this job was lost and another one starts the reply again; drop the text received so far;</item>
/// <item>exactly one final event (flag <c>final</c>, plus <c>degraded</c> when the model did not finish):
/// <c>{"kind": "final", "job", "text", "model", "attempts", "degraded", "reason", "error", "finish", "agent"}</c>,
/// where <c>text</c> is the whole reply (what was produced, when degraded).</item>
/// </list>
/// </remarks>
public static class JobWire
{
    public const string KindFinal = "final";
    public const string KindRestart = "restart";

    /// <summary>Encodes a job.</summary>
    public static byte[] EncodeRequest(JobRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var buffer = new ArrayBufferWriter<byte>(64 + (request.Input.Length * 3));
        var w = new MessagePackWriter(buffer);
        {
            int fields = 1 + (request.Id is null ? 0 : 1) + (request.ReplyTopic is null ? 0 : 1);
            w.WriteMapHeader(fields);
            if (request.Id is not null)
            {
                w.Write("id");
                w.Write(request.Id);
            }

            w.Write("input");
            w.Write(request.Input);
            if (request.ReplyTopic is not null)
            {
                w.Write("reply");
                w.Write(request.ReplyTopic);
            }
        }

        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Decodes a job; false with a reason a person can act on when the payload is not one.</summary>
    public static bool TryDecodeRequest(ReadOnlyMemory<byte> payload, [NotNullWhen(true)] out JobRequest? request, [NotNullWhen(false)] out string? error) =>
        TryDecodeRequest(payload, out request, out error, out _);

    /// <summary>Decodes a job; <paramref name="replyTopic"/> is the job's "reply" even when the rest of it is invalid, so the
    /// requester can be told.</summary>
    public static bool TryDecodeRequest(ReadOnlyMemory<byte> payload, [NotNullWhen(true)] out JobRequest? request, [NotNullWhen(false)] out string? error,
        out string? replyTopic)
    {
        request = null;
        replyTopic = null;
        string? id = null, input = null, reply = null;
        try
        {
            var reader = new MessagePackReader(payload);
            if (reader.NextMessagePackType != MessagePackType.Map)
            {
                error = $"a job is a MessagePack map {{\"input\", \"reply\", \"id\"}}, not {Describe(reader.NextMessagePackType)}";
                return false;
            }

            int count = reader.ReadMapHeader();
            for (int i = 0; i < count; i++)
            {
                string? key = reader.NextMessagePackType == MessagePackType.String ? reader.ReadString() : null;
                switch (key)
                {
                    case "id":
                        id = ReadText(ref reader, "id");
                        break;
                    case "input":
                        input = ReadText(ref reader, "input");
                        break;
                    case "reply":
                        reply = ReadText(ref reader, "reply");
                        replyTopic = reply;
                        break;
                    default:
                        if (key is null)
                        {
                            reader.Skip();
                        }

                        reader.Skip();
                        break;
                }
            }

            if (!reader.End)
            {
                error = "the job has bytes after its map";
                return false;
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or FormatException)
        {
            error = $"the job is not valid MessagePack: {ex.Message}";
            return false;
        }

        if (input is null)
        {
            error = "the job has no \"input\" (string)";
            return false;
        }

        if (id is { Length: 0 })
        {
            error = "the job's \"id\" is empty";
            return false;
        }

        request = new JobRequest(input) { Id = id, ReplyTopic = reply };
        error = null;
        return true;
    }

    /// <summary>Encodes a final event's payload.</summary>
    public static byte[] EncodeResult(JobResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var buffer = new ArrayBufferWriter<byte>(128 + (result.Text.Length * 3));
        var w = new MessagePackWriter(buffer);
        {
            w.WriteMapHeader(10);
            w.Write("kind");
            w.Write(KindFinal);
            w.Write("job");
            w.Write(result.JobId);
            w.Write("text");
            w.Write(result.Text);
            w.Write("model");
            WriteText(ref w, result.Model);
            w.Write("attempts");
            w.Write(result.Attempts);
            w.Write("degraded");
            w.Write(result.Degraded);
            w.Write("reason");
            WriteText(ref w, result.Reason);
            w.Write("error");
            WriteText(ref w, result.Error);
            w.Write("finish");
            WriteText(ref w, result.FinishReason);
            w.Write("agent");
            WriteText(ref w, result.Agent);
        }

        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Encodes a restart event's payload.</summary>
    public static byte[] EncodeRestart(JobRestarted restart)
    {
        ArgumentNullException.ThrowIfNull(restart);
        var buffer = new ArrayBufferWriter<byte>(128);
        var w = new MessagePackWriter(buffer);
        {
            w.WriteMapHeader(4);
            w.Write("kind");
            w.Write(KindRestart);
            w.Write("job");
            w.Write(restart.JobId);
            w.Write("attempt");
            w.Write(restart.Attempt);
            w.Write("reason");
            w.Write(restart.Reason);
        }

        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads one event of a reply stream: a <see cref="JobToken"/>, <see cref="JobRestarted"/> or <see cref="JobResult"/>.</summary>
    public static bool TryDecodeReply(RelayEvent e, [NotNullWhen(true)] out JobUpdate? update, [NotNullWhen(false)] out string? error)
    {
        ArgumentNullException.ThrowIfNull(e);
        update = null;
        string job = e.PrevEventId ?? "";
        if ((e.Flags & EventFlags.Partial) != 0)
        {
            try
            {
                update = new JobToken(job, Strict.GetString(e.Payload.Span), (e.Flags & EventFlags.Coalesced) != 0);
            }
            catch (DecoderFallbackException)
            {
                error = "a partial event's payload is not UTF-8 text";
                return false;
            }

            error = null;
            return true;
        }

        string? kind = null, text = null, model = null, reason = null, failure = null, finish = null, agent = null;
        long attempts = 0;
        bool degraded = false;
        try
        {
            var reader = new MessagePackReader(e.Payload);
            if (reader.NextMessagePackType != MessagePackType.Map)
            {
                error = "a reply event that is not partial is a MessagePack map with a \"kind\"";
                return false;
            }

            int count = reader.ReadMapHeader();
            for (int i = 0; i < count; i++)
            {
                string? key = reader.NextMessagePackType == MessagePackType.String ? reader.ReadString() : null;
                switch (key)
                {
                    case "kind": kind = ReadText(ref reader, key); break;
                    case "job": job = ReadText(ref reader, key) ?? job; break;
                    case "text": text = ReadText(ref reader, key); break;
                    case "model": model = ReadText(ref reader, key); break;
                    case "reason": reason = ReadText(ref reader, key); break;
                    case "error": failure = ReadText(ref reader, key); break;
                    case "finish": finish = ReadText(ref reader, key); break;
                    case "agent": agent = ReadText(ref reader, key); break;
                    case "attempts" or "attempt": attempts = reader.ReadInt64(); break;
                    case "degraded": degraded = reader.ReadBoolean(); break;
                    default:
                        if (key is null)
                        {
                            reader.Skip();
                        }

                        reader.Skip();
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or FormatException or OverflowException)
        {
            error = $"a reply event is not valid MessagePack: {ex.Message}";
            return false;
        }

        switch (kind)
        {
            case KindFinal:
                update = new JobResult(job, text ?? "")
                {
                    Model = model,
                    Attempts = (int)Math.Clamp(attempts, 0, int.MaxValue),
                    Degraded = degraded || (e.Flags & EventFlags.Degraded) != 0,
                    Reason = reason,
                    Error = failure,
                    FinishReason = finish,
                    Agent = agent,
                };
                break;
            case KindRestart:
                update = new JobRestarted(job, (int)Math.Clamp(attempts, 0, int.MaxValue), reason ?? "");
                break;
            default:
                error = kind is null ? "a reply event has no \"kind\"" : $"unknown reply event kind \"{kind}\"";
                return false;
        }

        error = null;
        return true;
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static string? ReadText(ref MessagePackReader reader, string field)
    {
        if (reader.TryReadNil())
        {
            return null;
        }

        if (reader.NextMessagePackType != MessagePackType.String)
        {
            throw new FormatException($"\"{field}\" must be a string, not {Describe(reader.NextMessagePackType)}");
        }

        return reader.ReadString();
    }

    private static string Describe(MessagePackType type) => type switch
    {
        MessagePackType.Integer => "an integer",
        MessagePackType.Nil => "nil",
        MessagePackType.Boolean => "a boolean",
        MessagePackType.Float => "a float",
        MessagePackType.String => "a string",
        MessagePackType.Binary => "binary",
        MessagePackType.Array => "an array",
        MessagePackType.Map => "a map",
        MessagePackType.Extension => "an extension",
        _ => "unknown data",
    };

    private static void WriteText(ref MessagePackWriter writer, string? value)
    {
        if (value is null)
        {
            writer.WriteNil();
        }
        else
        {
            writer.Write(value);
        }
    }
}
