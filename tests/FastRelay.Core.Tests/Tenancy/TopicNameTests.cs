using System.Text;
using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Tests.Tenancy;

public class TopicNameTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("a.b.c")]
    [InlineData("orders-eu_1.created")]
    [InlineData("ü.straße")]
    [InlineData("chat.😀")]
    [InlineData("A.B:C/D#E")]
    public void Valid_topics_are_accepted(string topic)
    {
        Assert.True(TopicName.Validate(Encoding.UTF8.GetBytes(topic), out string? error), error);
        Assert.Null(error);
    }

    [Fact]
    public void A_topic_of_exactly_256_bytes_is_accepted_and_257_is_refused()
    {
        byte[] max = Encoding.ASCII.GetBytes(string.Join('.', Enumerable.Repeat(new string('x', 15), 16))); // 16*15 + 15 = 255
        max = [.. max, (byte)'y'];
        Assert.Equal(256, max.Length);
        Assert.True(TopicName.Validate(max, out _));

        byte[] over = [.. max, (byte)'z'];
        Assert.False(TopicName.Validate(over, out string? error));
        Assert.Contains("257 bytes", error);
        Assert.Contains("256", error);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData(".a", "empty segment at byte 0")]
    [InlineData("a.", "empty segment at byte 2")]
    [InlineData("a..b", "empty segment at byte 2")]
    [InlineData(".", "empty segment")]
    [InlineData("a.*", "wildcard '*' at byte 2")]
    [InlineData("a.>", "wildcard '>' at byte 2")]
    [InlineData("a>b", "wildcard '>'")]
    [InlineData("a b", "whitespace at byte 1")]
    [InlineData("a\tb", "whitespace at byte 1")]
    [InlineData("ab\n", "whitespace at byte 2")]
    [InlineData("a\u0001b", "control character at byte 1")]
    [InlineData("a\u007Fb", "control character at byte 1")]
    [InlineData("a\u0000", "control character at byte 1")]
    [InlineData("a\u00A0b", "whitespace (U+00A0) at byte 1")]
    [InlineData("a\u2003b", "whitespace (U+2003)")]
    [InlineData("a\u0085b", "whitespace (U+0085)")]
    [InlineData("a\u0080b", "control character (U+0080)")]
    public void Invalid_topics_are_refused_with_the_reason(string topic, string expected)
    {
        Assert.False(TopicName.Validate(Encoding.UTF8.GetBytes(topic), out string? error));
        Assert.StartsWith("topic", error);
        Assert.Contains(expected, error);
    }

    [Theory]
    [InlineData(new byte[] { 0x61, 0xFF }, 1)]             // never valid in UTF-8
    [InlineData(new byte[] { 0x61, 0x2E, 0xC0, 0xAF }, 2)] // overlong '/'
    [InlineData(new byte[] { 0xE2, 0x82 }, 0)]             // truncated sequence
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 }, 0)]       // encoded surrogate
    [InlineData(new byte[] { 0x80 }, 0)]                   // lone continuation byte
    public void Invalid_utf8_is_refused_with_its_offset(byte[] topic, int offset)
    {
        Assert.False(TopicName.Validate(topic, out string? error));
        Assert.Contains($"not valid UTF-8 at byte {offset}", error);
    }

    [Theory]
    [InlineData("*")]
    [InlineData(">")]
    [InlineData("a.*.c.>")]
    [InlineData("*.*")]
    [InlineData("a.b")]
    [InlineData("ü.*")]
    public void Valid_patterns_are_accepted(string pattern)
    {
        Assert.True(TopicName.ValidatePattern(Encoding.UTF8.GetBytes(pattern), out string? error), error);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a*", "'*' inside a segment at byte 1")]
    [InlineData("*a", "'*' inside a segment at byte 0")]
    [InlineData("a.b>", "'>' inside a segment at byte 3")]
    [InlineData(">>", "'>' inside a segment")]
    [InlineData("a.>.b", "'>' may only be the last segment")]
    [InlineData(">.a", "'>' may only be the last segment")]
    [InlineData("a..*", "empty segment at byte 2")]
    [InlineData("a.*.", "empty segment at byte 4")]
    [InlineData("a. *", "whitespace at byte 2")]
    public void Invalid_patterns_are_refused_with_the_reason(string pattern, string expected)
    {
        Assert.False(TopicName.ValidatePattern(Encoding.UTF8.GetBytes(pattern), out string? error));
        Assert.StartsWith("pattern", error);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void String_overloads_refuse_lone_surrogates_instead_of_replacing_them()
    {
        Assert.False(TopicName.Validate("a.\uD800", out string? error));
        Assert.Contains("lone surrogate", error);
        Assert.False(TopicName.ValidatePattern("a.\uDC00.*", out error));
        Assert.Contains("lone surrogate", error);
        Assert.True(TopicName.Validate("a.😀", out _));
    }
}
