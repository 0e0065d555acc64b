using System.Diagnostics.CodeAnalysis;
using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Sidecar.Configuration;

/// <summary>The relay's topic and pattern rules, checked at startup so a bad agent fails before it subscribes.</summary>
/// <remarks>
/// Mirrors the relay's own check (FastRelay.Core's TopicName): 1..256 UTF-8 bytes, '.'-separated non-empty segments,
/// no whitespace or control characters; in patterns '*' is one whole segment and '&gt;' the whole last one. The relay
/// stays the authority; this only moves the error from the first SUB to the configuration check.
/// </remarks>
internal static class TopicRules
{
    public static bool Validate(string topic, bool isPattern, [NotNullWhen(false)] out string? error)
    {
        string what = isPattern ? "pattern" : "topic";
        int bytes = Encoding.UTF8.GetByteCount(topic);
        if (bytes == 0 || bytes > ProtocolLimits.MaxTopicBytes)
        {
            error = bytes == 0 ? $"{what} is empty" : $"{what} is {bytes} bytes long; the limit is {ProtocolLimits.MaxTopicBytes}";
            return false;
        }

        string[] segments = topic.Split('.');
        for (int i = 0; i < segments.Length; i++)
        {
            string segment = segments[i];
            if (segment.Length == 0)
            {
                error = $"{what} has an empty segment";
                return false;
            }

            foreach (char c in segment)
            {
                if (char.IsWhiteSpace(c) || char.IsControl(c))
                {
                    error = $"{what} contains whitespace or a control character";
                    return false;
                }

                if (c is '*' or '>')
                {
                    if (!isPattern)
                    {
                        error = $"topic contains the wildcard '{c}'; wildcards are only allowed in patterns";
                        return false;
                    }

                    if (segment.Length != 1)
                    {
                        error = $"pattern has '{c}' inside a segment; a wildcard must be a whole segment";
                        return false;
                    }

                    if (c == '>' && i != segments.Length - 1)
                    {
                        error = "pattern has '>' before the last segment; '>' may only be the last segment";
                        return false;
                    }
                }
            }
        }

        error = null;
        return true;
    }

    /// <summary>True when some topic matches both <paramref name="a"/> and <paramref name="b"/> (topics or patterns).</summary>
    public static bool Overlap(string a, string b)
    {
        string[] p = a.Split('.');
        string[] q = b.Split('.');
        for (int i = 0; ; i++)
        {
            bool pEnded = i >= p.Length, qEnded = i >= q.Length;
            if (pEnded || qEnded)
            {
                return pEnded && qEnded;
            }

            if (p[i] == ">" || q[i] == ">")
            {
                return true; // both still have a segment here, which '>' takes with the rest
            }

            if (p[i] != "*" && q[i] != "*" && p[i] != q[i])
            {
                return false;
            }
        }
    }

    /// <summary>True when the concrete <paramref name="topic"/> matches <paramref name="pattern"/>.</summary>
    public static bool Matches(string pattern, string topic)
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
