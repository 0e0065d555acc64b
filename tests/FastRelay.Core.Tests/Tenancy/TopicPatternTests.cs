using System.Text;
using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Tests.Tenancy;

public class TopicPatternTests
{
    [Theory]
    // literal
    [InlineData("a", "a", true)]
    [InlineData("a", "b", false)]
    [InlineData("a", "ab", false)]
    [InlineData("ab", "a", false)]
    [InlineData("a.b", "a.b", true)]
    [InlineData("a.b", "a.bc", false)]
    [InlineData("a.b", "a.b.c", false)]
    [InlineData("a.b.c", "a.b", false)]
    [InlineData("ü.x", "ü.x", true)]
    [InlineData("ü", "u", false)]
    // '*': exactly one segment
    [InlineData("*", "a", true)]
    [InlineData("*", "a.b", false)]
    [InlineData("a.*", "a", false)]
    [InlineData("a.*", "a.b", true)]
    [InlineData("a.*", "a.b.c", false)]
    [InlineData("a.*", "ab.c", false)]
    [InlineData("a.*", "b.a", false)]
    [InlineData("*.b", "a.b", true)]
    [InlineData("*.b", "a.c", false)]
    [InlineData("*.b", "a.bb", false)]
    [InlineData("a.*.c", "a.x.c", true)]
    [InlineData("a.*.c", "a.x.d", false)]
    [InlineData("a.*.c", "a.c", false)]
    [InlineData("a.*.c", "a.x.c.d", false)]
    [InlineData("*.*", "a.b", true)]
    [InlineData("*.*", "a", false)]
    [InlineData("*.*", "a.b.c", false)]
    [InlineData("ü.*", "ü.😀", true)]
    // '>': one or more remaining segments
    [InlineData(">", "a", true)]
    [InlineData(">", "a.b.c", true)]
    [InlineData("a.>", "a", false)]
    [InlineData("a.>", "a.b", true)]
    [InlineData("a.>", "a.b.c", true)]
    [InlineData("a.>", "ab.c", false)]
    [InlineData("a.>", "b.a", false)]
    [InlineData("a.b.>", "a.b", false)]
    [InlineData("a.b.>", "a.b.c", true)]
    [InlineData("a.b.>", "a.bc.d", false)]
    [InlineData("*.>", "a", false)]
    [InlineData("*.>", "a.b", true)]
    [InlineData("a.*.>", "a.b", false)]
    [InlineData("a.*.>", "a.b.c", true)]
    [InlineData("a.*.>", "a.b.c.d", true)]
    [InlineData("*.b.>", "x.b.y", true)]
    [InlineData("*.b.>", "x.c.y", false)]
    [InlineData("*.b.>", "x.b", false)]
    public void Matches_follows_nats_semantics(string pattern, string topic, bool expected)
    {
        Assert.Equal(expected, TopicPattern.Parse(pattern).Matches(Encoding.UTF8.GetBytes(topic)));
    }

    [Theory]
    [InlineData(">")]
    [InlineData("*")]
    [InlineData("a")]
    [InlineData("a.>")]
    public void An_empty_topic_matches_nothing(string pattern)
    {
        Assert.False(TopicPattern.Parse(pattern).Matches(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void Matches_agrees_with_a_reference_matcher_on_every_small_pattern_and_topic()
    {
        foreach (string pattern in SmallPatterns())
        {
            var compiled = TopicPattern.Parse(pattern);
            foreach (string topic in SmallTopics())
            {
                Assert.True(ReferenceMatches(pattern, topic) == compiled.Matches(Encoding.UTF8.GetBytes(topic)), $"'{pattern}' vs '{topic}'");
            }
        }
    }

    [Theory]
    [InlineData(">", "a", true)]
    [InlineData(">", "a.>", true)]
    [InlineData(">", ">", true)]
    [InlineData(">", "*.*", true)]
    [InlineData("a.>", "a.b", true)]
    [InlineData("a.>", "a.b.>", true)]
    [InlineData("a.>", "a.>", true)]
    [InlineData("a.>", "a.*", true)]
    [InlineData("a.>", "a.*.c", true)]
    [InlineData("a.>", "a", false)]
    [InlineData("a.>", ">", false)]
    [InlineData("a.>", "*.b", false)]
    [InlineData("a.*", "a.b", true)]
    [InlineData("a.*", "a.*", true)]
    [InlineData("a.*", "a.>", false)]
    [InlineData("a.*", "a.b.c", false)]
    [InlineData("a.*", "a", false)]
    [InlineData("*.b", "a.b", true)]
    [InlineData("*.b", "*.b", true)]
    [InlineData("*.b", "*.*", false)]
    [InlineData("a.b", "a.b", true)]
    [InlineData("a.b", "a.*", false)]
    [InlineData("a.b", "a.c", false)]
    [InlineData("a.b", "a.b.c", false)]
    [InlineData("*.>", ">", false)]
    [InlineData("*.>", "a.>", true)]
    [InlineData("*.>", "a", false)]
    [InlineData("*.>", "*.*", true)]
    [InlineData("a.*.>", "a.b.>", true)]
    [InlineData("a.*.>", "a.>", false)]
    [InlineData("*", ">", false)]
    [InlineData("*", "*", true)]
    public void Covers_is_true_only_when_every_topic_of_the_other_pattern_matches(string pattern, string other, bool expected)
    {
        Assert.Equal(expected, TopicPattern.Parse(pattern).Covers(TopicPattern.Parse(other)));
    }

    [Fact]
    public void Covers_agrees_with_brute_force_over_every_small_pattern_pair()
    {
        // Topics use 'c', a literal no pattern names, so every '*' or '>' in the other pattern has a witness
        // that a literal cannot match; four segments exceed every pattern's length by one.
        var patterns = SmallPatterns().Select(TopicPattern.Parse).ToArray();
        var topics = SmallTopics().Select(Encoding.UTF8.GetBytes).ToArray();
        var matches = patterns.Select(p => topics.Select(t => p.Matches(t)).ToArray()).ToArray();

        for (int p = 0; p < patterns.Length; p++)
        {
            for (int q = 0; q < patterns.Length; q++)
            {
                bool bruteForce = true;
                for (int t = 0; t < topics.Length && bruteForce; t++)
                {
                    bruteForce = !matches[q][t] || matches[p][t];
                }

                Assert.True(bruteForce == patterns[p].Covers(patterns[q]), $"'{patterns[p]}' covers '{patterns[q]}': expected {bruteForce}");
            }
        }
    }

    [Fact]
    public void Parse_refuses_an_invalid_pattern_with_the_reason()
    {
        var ex = Assert.Throws<FormatException>(() => TopicPattern.Parse("a.>.b"));
        Assert.Contains("'>' may only be the last segment", ex.Message);
        Assert.False(TopicPattern.TryParse("a\uD800", out _, out string? error));
        Assert.Contains("surrogate", error);
        Assert.False(TopicPattern.TryParse(new string('a', 300), out _, out error));
        Assert.Contains("256", error);
    }

    [Fact]
    public void ToString_and_equality_use_the_pattern_text()
    {
        var a = TopicPattern.Parse("a.*.>");
        Assert.Equal("a.*.>", a.ToString());
        Assert.Equal(a, TopicPattern.Parse("a.*.>"));
        Assert.Equal(a.GetHashCode(), TopicPattern.Parse("a.*.>").GetHashCode());
        Assert.NotEqual(a, TopicPattern.Parse("a.*"));
        Assert.True(TopicPattern.Parse("a.b").IsLiteral);
        Assert.False(a.IsLiteral);
        Assert.Equal(3, a.SegmentCount);
    }

    internal static IEnumerable<string> SmallPatterns()
    {
        string[] inner = ["a", "b", "*"];
        string[] last = ["a", "b", "*", ">"];
        foreach (string l in last)
        {
            yield return l;
        }

        foreach (string i in inner)
        {
            foreach (string l in last)
            {
                yield return $"{i}.{l}";
            }
        }

        foreach (string i in inner)
        {
            foreach (string j in inner)
            {
                foreach (string l in last)
                {
                    yield return $"{i}.{j}.{l}";
                }
            }
        }
    }

    internal static IEnumerable<string> SmallTopics()
    {
        IEnumerable<string> level = ["a", "b", "c"];
        for (int depth = 1; depth <= 4; depth++)
        {
            foreach (string t in level)
            {
                yield return t;
            }

            level = level.SelectMany(t => new[] { t + ".a", t + ".b", t + ".c" }).ToArray();
        }
    }

    private static bool ReferenceMatches(string pattern, string topic)
    {
        string[] p = pattern.Split('.');
        string[] t = topic.Split('.');
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] == ">")
            {
                return t.Length > i;
            }

            if (i >= t.Length || (p[i] != "*" && p[i] != t[i]))
            {
                return false;
            }
        }

        return p.Length == t.Length;
    }
}
