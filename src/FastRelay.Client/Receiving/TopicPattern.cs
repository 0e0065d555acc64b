using System.Text;

namespace FastRelay.Client;

/// <summary>
/// A NATS-style topic pattern as the server reads it (protocol 4.5): segments split on '.', '*' matches exactly one
/// segment, a final '&gt;' matches one or more. Matches UTF-8 topic bytes without allocating.
/// </summary>
internal sealed class TopicPattern
{
    private enum SegmentKind : byte
    {
        Literal,
        Single,
        Tail,
    }

    private readonly (byte[] Literal, SegmentKind Kind)[] _segments;

    public TopicPattern(string text)
    {
        Text = text;
        _segments = [.. text.Split('.').Select(static s => s switch
        {
            "*" => ([], SegmentKind.Single),
            ">" => (Array.Empty<byte>(), SegmentKind.Tail),
            _ => (Encoding.UTF8.GetBytes(s), SegmentKind.Literal),
        })];
    }

    public string Text { get; }

    /// <summary>True when <paramref name="topic"/> is a pattern (has a wildcard character) rather than one topic.</summary>
    public static bool IsPattern(string topic) => topic.AsSpan().IndexOfAny('*', '>') >= 0;

    public bool Matches(ReadOnlySpan<byte> topic)
    {
        // pos = start of the next unread topic segment; topic.Length + 1 once the last one has been read.
        int pos = 0;
        foreach (var (literal, kind) in _segments)
        {
            if (kind == SegmentKind.Tail)
            {
                return pos < topic.Length; // one or more segments left
            }

            if (pos > topic.Length)
            {
                return false; // the topic has fewer segments
            }

            var rest = topic[pos..];
            int dot = rest.IndexOf((byte)'.');
            var part = dot < 0 ? rest : rest[..dot];
            if (kind == SegmentKind.Single ? part.IsEmpty : !part.SequenceEqual(literal))
            {
                return false;
            }

            pos = dot < 0 ? topic.Length + 1 : pos + dot + 1;
        }

        return pos == topic.Length + 1; // and the topic has no segment left over
    }

    public override string ToString() => Text;
}
