namespace FastRelay.Core.Tenancy;

/// <summary>The topics a client may publish or subscribe to: the union of its allowed patterns.</summary>
public sealed class TopicPatternSet
{
    private readonly TopicPattern[] _patterns;
    private readonly bool _allowsAll;

    public TopicPatternSet(IEnumerable<TopicPattern> patterns)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        var distinct = new List<TopicPattern>();
        foreach (var p in patterns)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(patterns));
            if (!distinct.Contains(p))
            {
                distinct.Add(p);
            }
        }

        _patterns = distinct.ToArray();
        _allowsAll = distinct.Exists(p => p.Equals(TopicPattern.All));
    }

    /// <summary>Every topic ('&gt;'): the rights of the single default tenant's clients.</summary>
    public static TopicPatternSet All { get; } = new([TopicPattern.All]);

    /// <summary>No topic at all.</summary>
    public static TopicPatternSet None { get; } = new([]);

    public IReadOnlyList<TopicPattern> Patterns => _patterns;

    public bool IsEmpty => _patterns.Length == 0;

    /// <summary>True when some pattern matches <paramref name="topic"/> (a validated topic). Allocation-free.</summary>
    public bool Allows(ReadOnlySpan<byte> topic)
    {
        if (_allowsAll)
        {
            return !topic.IsEmpty;
        }

        var patterns = _patterns;
        for (int i = 0; i < patterns.Length; i++)
        {
            if (patterns[i].Matches(topic))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when one allowed pattern covers every topic <paramref name="pattern"/> can match.</summary>
    /// <remarks>
    /// Conservative: a pattern covered only by several allowed patterns together (say 'a.&gt;' against
    /// 'a.*' plus 'a.*.&gt;') is refused.
    /// </remarks>
    public bool AllowsPattern(TopicPattern pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var patterns = _patterns;
        for (int i = 0; i < patterns.Length; i++)
        {
            if (patterns[i].Covers(pattern))
            {
                return true;
            }
        }

        return false;
    }

    public override string ToString() => "[" + string.Join(", ", (IEnumerable<TopicPattern>)_patterns) + "]";
}
