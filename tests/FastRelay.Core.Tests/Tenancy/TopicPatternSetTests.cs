using System.Text;
using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Tests.Tenancy;

public class TopicPatternSetTests
{
    private static TopicPatternSet Set(params string[] patterns) => new(patterns.Select(TopicPattern.Parse));

    [Fact]
    public void Allows_a_topic_when_any_pattern_matches()
    {
        var set = Set("orders.created", "chat.*", "jobs.eu.>");
        Assert.True(set.Allows("orders.created"u8));
        Assert.True(set.Allows("chat.room1"u8));
        Assert.True(set.Allows("jobs.eu.gpu.high"u8));
        Assert.False(set.Allows("orders.deleted"u8));
        Assert.False(set.Allows("chat"u8));
        Assert.False(set.Allows("chat.room1.x"u8));
        Assert.False(set.Allows("jobs.eu"u8));
        Assert.False(set.Allows("jobs.us.gpu"u8));
    }

    [Fact]
    public void All_allows_every_topic_and_None_allows_nothing()
    {
        Assert.True(TopicPatternSet.All.Allows("a"u8));
        Assert.True(TopicPatternSet.All.Allows("a.b.c.d"u8));
        Assert.True(TopicPatternSet.All.AllowsPattern(TopicPattern.Parse("a.>")));
        Assert.True(TopicPatternSet.All.AllowsPattern(TopicPattern.All));
        Assert.Equal(">", Assert.Single(TopicPatternSet.All.Patterns).ToString());

        Assert.True(TopicPatternSet.None.IsEmpty);
        Assert.False(TopicPatternSet.None.Allows("a"u8));
        Assert.False(TopicPatternSet.None.AllowsPattern(TopicPattern.Parse("a")));
    }

    [Fact]
    public void AllowsPattern_requires_one_allowed_pattern_to_cover_the_subscription()
    {
        var set = Set("chat.*", "jobs.>");
        Assert.True(set.AllowsPattern(TopicPattern.Parse("chat.*")));
        Assert.True(set.AllowsPattern(TopicPattern.Parse("chat.room1")));
        Assert.True(set.AllowsPattern(TopicPattern.Parse("jobs.*.high")));
        Assert.True(set.AllowsPattern(TopicPattern.Parse("jobs.>")));
        Assert.False(set.AllowsPattern(TopicPattern.Parse("chat.>")));
        Assert.False(set.AllowsPattern(TopicPattern.Parse(">")));
        Assert.False(set.AllowsPattern(TopicPattern.Parse("*.room1")));
    }

    [Fact]
    public void AllowsPattern_is_conservative_for_a_pattern_only_a_union_covers()
    {
        // 'a.*' plus 'a.*.>' match every topic 'a.>' matches, but neither alone does: refused, never widened.
        Assert.False(Set("a.*", "a.*.>").AllowsPattern(TopicPattern.Parse("a.>")));
    }

    [Fact]
    public void Duplicate_patterns_are_kept_once()
    {
        Assert.Equal(2, Set("a.*", "a.*", "b").Patterns.Count);
        Assert.Equal("[a.*, b]", Set("a.*", "b").ToString());
    }

    [Fact]
    public void Allows_allocates_nothing_after_warm_up()
    {
        var set = Set("tenant.orders.created", "tenant.chat.*", "tenant.jobs.>", "*.metrics.*.>", "other.>");
        byte[][] topics =
        [
            Encoding.UTF8.GetBytes("tenant.orders.created"),
            Encoding.UTF8.GetBytes("tenant.chat.room42"),
            Encoding.UTF8.GetBytes("tenant.jobs.eu.gpu"),
            Encoding.UTF8.GetBytes("node1.metrics.cpu.p99"),
            Encoding.UTF8.GetBytes("tenant.denied.topic"),
        ];

        int allowed = 0;
        for (int i = 0; i < 10_000; i++)
        {
            allowed += set.Allows(topics[i % topics.Length]) ? 1 : 0;
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200_000; i++)
        {
            allowed += set.Allows(topics[i % topics.Length]) ? 1 : 0;
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(210_000 / 5 * 4, allowed); // four of the five topics are allowed
    }
}
