using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace FastRelay.Core.Tenancy;

/// <summary>A topic pattern compiled once ('*' = exactly one segment, a final '&gt;' = one or more), matched without allocating.</summary>
public sealed class TopicPattern : IEquatable<TopicPattern>
{
    private enum SegmentKind : byte
    {
        Literal,
        Single, // '*'
        Tail,   // '>'
    }

    private readonly record struct Segment(int Start, int Length, SegmentKind Kind);

    private enum Shape : byte
    {
        General,
        Literal,            // no wildcard: byte equality
        LiteralPrefixTail,  // "a.b.>": prefix "a.b." and at least one more byte
        All,                // ">"
    }

    private readonly string _text;
    private readonly byte[] _utf8;
    private readonly Segment[] _segments;
    private readonly Shape _shape;
    private readonly int _prefixLength;

    private TopicPattern(string text, byte[] utf8)
    {
        _text = text;
        _utf8 = utf8;

        int count = 1;
        foreach (byte b in utf8)
        {
            if (b == TopicName.Separator)
            {
                count++;
            }
        }

        _segments = new Segment[count];
        int start = 0;
        int n = 0;
        bool anyWildcard = false;
        for (int i = 0; i <= utf8.Length; i++)
        {
            if (i < utf8.Length && utf8[i] != TopicName.Separator)
            {
                continue;
            }

            int length = i - start;
            var kind = SegmentKind.Literal;
            if (length == 1 && utf8[start] == TopicName.SingleWildcard)
            {
                kind = SegmentKind.Single;
                anyWildcard = true;
            }
            else if (length == 1 && utf8[start] == TopicName.TailWildcard)
            {
                kind = SegmentKind.Tail;
                anyWildcard = true;
            }

            _segments[n++] = new Segment(start, length, kind);
            start = i + 1;
        }

        if (!anyWildcard)
        {
            _shape = Shape.Literal;
        }
        else if (count == 1 && _segments[0].Kind == SegmentKind.Tail)
        {
            _shape = Shape.All;
        }
        else if (_segments[^1].Kind == SegmentKind.Tail && OnlyLiteralsBefore(_segments, count - 1))
        {
            _shape = Shape.LiteralPrefixTail;
            _prefixLength = _segments[^1].Start; // includes the '.' before '>'
        }
        else
        {
            _shape = Shape.General;
        }
    }

    /// <summary>The pattern that matches every topic: '&gt;'.</summary>
    public static TopicPattern All { get; } = new(">", ">"u8.ToArray());

    /// <summary>True when the pattern has no wildcard and so matches exactly one topic.</summary>
    public bool IsLiteral => _shape == Shape.Literal;

    /// <summary>Number of dot-separated segments, wildcards included.</summary>
    public int SegmentCount => _segments.Length;

    /// <summary>The pattern's UTF-8 bytes.</summary>
    public ReadOnlySpan<byte> Utf8 => _utf8;

    /// <summary>Compiles <paramref name="pattern"/>; throws <see cref="FormatException"/> with the reason when it is not valid.</summary>
    public static TopicPattern Parse(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (!TryParse(pattern, out var compiled, out string? error))
        {
            throw new FormatException($"Invalid topic pattern '{pattern}': {error}.");
        }

        return compiled;
    }

    /// <summary>Compiles <paramref name="pattern"/>, or says in <paramref name="error"/> why it is not valid.</summary>
    public static bool TryParse(string pattern, [NotNullWhen(true)] out TopicPattern? compiled, [NotNullWhen(false)] out string? error)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        compiled = null;
        if (pattern.Length > TopicName.MaxBytes)
        {
            error = $"pattern is longer than {TopicName.MaxBytes} bytes";
            return false;
        }

        if (!TopicName.TryEncode(pattern, "pattern", out byte[]? utf8, out error) || !TopicName.ValidatePattern(utf8, out error))
        {
            return false;
        }

        compiled = new TopicPattern(pattern, utf8);
        return true;
    }

    /// <summary>True when <paramref name="topic"/> (a topic valid per <see cref="TopicName.Validate(ReadOnlySpan{byte}, out string?)"/>) matches.</summary>
    /// <remarks>Allocation-free. An empty topic never matches; other invalid topics give an unspecified answer.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Matches(ReadOnlySpan<byte> topic)
    {
        switch (_shape)
        {
            case Shape.Literal:
                return topic.SequenceEqual(_utf8);
            case Shape.LiteralPrefixTail:
                return topic.Length > _prefixLength && topic.StartsWith(new ReadOnlySpan<byte>(_utf8, 0, _prefixLength));
            case Shape.All:
                return !topic.IsEmpty;
            default:
                return MatchesGeneral(topic);
        }
    }

    private bool MatchesGeneral(ReadOnlySpan<byte> topic)
    {
        // pos = start of the next unread topic segment; topic.Length + 1 once the last one has been read.
        int pos = 0;
        var segments = _segments;
        for (int i = 0; i < segments.Length; i++)
        {
            Segment seg = segments[i];
            if (seg.Kind == SegmentKind.Tail)
            {
                return pos < topic.Length; // at least one more segment
            }

            if (pos >= topic.Length)
            {
                return false; // topic ran out of segments
            }

            ReadOnlySpan<byte> rest = topic[pos..];
            if (seg.Kind == SegmentKind.Literal)
            {
                if (!rest.StartsWith(new ReadOnlySpan<byte>(_utf8, seg.Start, seg.Length)))
                {
                    return false;
                }

                if (seg.Length == rest.Length)
                {
                    pos = topic.Length + 1;
                }
                else if (rest[seg.Length] == TopicName.Separator)
                {
                    pos += seg.Length + 1;
                }
                else
                {
                    return false; // the topic segment only starts with the literal
                }
            }
            else
            {
                int dot = rest.IndexOf(TopicName.Separator);
                if (dot == 0)
                {
                    return false; // '*' needs a non-empty segment
                }

                pos = dot < 0 ? topic.Length + 1 : pos + dot + 1;
            }
        }

        return pos == topic.Length + 1;
    }

    /// <summary>True when every topic that <paramref name="other"/> matches is also matched by this pattern.</summary>
    public bool Covers(TopicPattern other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (_shape == Shape.All)
        {
            return true;
        }

        var mine = _segments;
        var theirs = other._segments;
        for (int i = 0; i < mine.Length; i++)
        {
            Segment m = mine[i];
            if (m.Kind == SegmentKind.Tail)
            {
                return i < theirs.Length; // 'other' has one or more segments left here, whatever they are
            }

            if (i >= theirs.Length)
            {
                return false; // 'other' matches shorter topics than this one does
            }

            Segment t = theirs[i];
            if (t.Kind == SegmentKind.Tail)
            {
                return false; // 'other' matches arbitrarily long topics; only a '>' here could cover them
            }

            if (m.Kind == SegmentKind.Single)
            {
                continue; // '*' covers a literal and a '*'
            }

            if (t.Kind != SegmentKind.Literal ||
                !new ReadOnlySpan<byte>(_utf8, m.Start, m.Length).SequenceEqual(new ReadOnlySpan<byte>(other._utf8, t.Start, t.Length)))
            {
                return false;
            }
        }

        return theirs.Length == mine.Length;
    }

    /// <summary>True when some topic matches both this pattern and <paramref name="other"/>.</summary>
    public bool Overlaps(TopicPattern other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var mine = _segments;
        var theirs = other._segments;
        for (int i = 0; ; i++)
        {
            if (i == mine.Length || i == theirs.Length)
            {
                return mine.Length == theirs.Length; // one ran out first: it matches shorter topics only
            }

            Segment m = mine[i];
            Segment t = theirs[i];
            if (m.Kind == SegmentKind.Tail || t.Kind == SegmentKind.Tail)
            {
                return true; // '>' takes whatever one or more segments the other side matches from here
            }

            if (m.Kind == SegmentKind.Literal && t.Kind == SegmentKind.Literal &&
                !new ReadOnlySpan<byte>(_utf8, m.Start, m.Length).SequenceEqual(new ReadOnlySpan<byte>(other._utf8, t.Start, t.Length)))
            {
                return false;
            }
        }
    }

    public bool Equals(TopicPattern? other) => other is not null && string.Equals(_text, other._text, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as TopicPattern);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(_text);

    public override string ToString() => _text;

    private static bool OnlyLiteralsBefore(Segment[] segments, int end)
    {
        for (int i = 0; i < end; i++)
        {
            if (segments[i].Kind != SegmentKind.Literal)
            {
                return false;
            }
        }

        return true;
    }
}
