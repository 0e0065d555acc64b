using System.Runtime.CompilerServices;

namespace FastRelay.Sidecar.Models;

/// <summary>The built-in deterministic model: replies with the prompt (echo) or the next line of a script, word by word.</summary>
/// <remarks>
/// Needs no model server, so the demo works out of the box and tests get a reply they can predict. Each token is a
/// word with its trailing whitespace, so the tokens concatenate to exactly the reply. With a script, call N gets line
/// N mod length (a shared counter, so concurrent calls each get their own line).
/// </remarks>
public sealed class ScriptedModel : IModelAdapter
{
    private readonly IReadOnlyList<string> _script;
    private readonly TimeSpan _tokenDelay;
    private readonly string _echoPrefix;
    private readonly TimeProvider _time;
    private int _calls = -1;

    /// <param name="script">Replies to give in turn; empty means echo the last user message.</param>
    /// <param name="tokenDelay">Pause before each token, to look (and time) like a real model.</param>
    /// <param name="echoPrefix">Put before the echoed message, e.g. "echo: ".</param>
    public ScriptedModel(IReadOnlyList<string>? script = null, TimeSpan tokenDelay = default, string echoPrefix = "", TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokenDelay, TimeSpan.Zero);
        _script = script ?? [];
        _tokenDelay = tokenDelay;
        _echoPrefix = echoPrefix ?? "";
        _time = time ?? TimeProvider.System;
    }

    /// <summary>How many calls have started.</summary>
    public int Calls => Volatile.Read(ref _calls) + 1;

    public async IAsyncEnumerable<ModelChunk> StreamAsync(ModelRequest request, [EnumeratorCancellation] CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        int call = Interlocked.Increment(ref _calls);
        string reply = _script.Count > 0 ? _script[call % _script.Count] : _echoPrefix + LastUserMessage(request);
        foreach (string token in Tokenize(reply))
        {
            if (_tokenDelay > TimeSpan.Zero)
            {
                await Task.Delay(_tokenDelay, _time, ct).ConfigureAwait(false);
            }
            else
            {
                ct.ThrowIfCancellationRequested();
            }

            yield return ModelChunk.Delta(token);
        }

        yield return ModelChunk.Final();
    }

    /// <summary>Splits into words, each keeping the whitespace after it (leading whitespace stays with the first word).</summary>
    public static IEnumerable<string> Tokenize(string text)
    {
        int start = 0;
        int i = 0;
        while (i < text.Length && char.IsWhiteSpace(text[i]))
        {
            i++;
        }

        while (i < text.Length)
        {
            while (i < text.Length && !char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            yield return text[start..i];
            start = i;
        }

        if (start < text.Length)
        {
            yield return text[start..];
        }
    }

    private static string LastUserMessage(ModelRequest request)
    {
        for (int i = request.Messages.Count - 1; i >= 0; i--)
        {
            if (request.Messages[i].Role == ChatRole.User)
            {
                return request.Messages[i].Content;
            }
        }

        return "";
    }
}
