using System.Diagnostics.CodeAnalysis;
using System.Text;
using FastRelay.Protocol;

namespace FastRelay.Core.Tenancy;

/// <summary>Validation of topic names and topic patterns given as UTF-8 bytes.</summary>
/// <remarks>
/// A topic is 1..<see cref="MaxBytes"/> bytes of valid UTF-8: non-empty segments separated by '.', with no
/// whitespace, control characters, '*' or '&gt;'. A pattern follows the same rules, except that a segment may be
/// '*' (exactly one segment) and the last segment may be '&gt;' (one or more remaining segments), as in NATS.
/// </remarks>
public static class TopicName
{
    /// <summary>Longest topic or pattern, in UTF-8 bytes.</summary>
    public const int MaxBytes = ProtocolLimits.MaxTopicBytes;

    public const byte Separator = (byte)'.';
    public const byte SingleWildcard = (byte)'*';
    public const byte TailWildcard = (byte)'>';

    /// <summary>True when <paramref name="topic"/> is a valid concrete topic; otherwise <paramref name="error"/> says why.</summary>
    public static bool Validate(ReadOnlySpan<byte> topic, [NotNullWhen(false)] out string? error) => ValidateCore(topic, isPattern: false, out error);

    /// <summary>True when <paramref name="pattern"/> is a valid topic pattern; otherwise <paramref name="error"/> says why.</summary>
    public static bool ValidatePattern(ReadOnlySpan<byte> pattern, [NotNullWhen(false)] out string? error) => ValidateCore(pattern, isPattern: true, out error);

    /// <summary>Validates a topic given as a string (encoded to UTF-8 first).</summary>
    public static bool Validate(string topic, [NotNullWhen(false)] out string? error) =>
        TryEncode(topic, "topic", out byte[]? utf8, out error) && Validate(utf8, out error);

    /// <summary>Validates a pattern given as a string (encoded to UTF-8 first).</summary>
    public static bool ValidatePattern(string pattern, [NotNullWhen(false)] out string? error) =>
        TryEncode(pattern, "pattern", out byte[]? utf8, out error) && ValidatePattern(utf8, out error);

    /// <summary>Encodes to UTF-8, refusing lone surrogates (the default encoder would silently turn them into U+FFFD).</summary>
    internal static bool TryEncode(string text, string what, [NotNullWhen(true)] out byte[]? utf8, [NotNullWhen(false)] out string? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        try
        {
            utf8 = StrictUtf8.GetBytes(text);
            error = null;
            return true;
        }
        catch (EncoderFallbackException)
        {
            utf8 = null;
            error = $"{what} is not valid Unicode (lone surrogate)";
            return false;
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static bool ValidateCore(ReadOnlySpan<byte> s, bool isPattern, [NotNullWhen(false)] out string? error)
    {
        string what = isPattern ? "pattern" : "topic";
        if (s.IsEmpty)
        {
            error = $"{what} is empty";
            return false;
        }

        if (s.Length > MaxBytes)
        {
            error = $"{what} is {s.Length} bytes long; the limit is {MaxBytes}";
            return false;
        }

        int segmentStart = 0;
        int i = 0;
        while (i < s.Length)
        {
            byte b = s[i];
            if (b == Separator)
            {
                if (i == segmentStart)
                {
                    error = EmptySegment(what, i);
                    return false;
                }

                segmentStart = i + 1;
                i++;
                continue;
            }

            if (b < 0x80)
            {
                if (b == SingleWildcard || b == TailWildcard)
                {
                    if (!isPattern)
                    {
                        error = $"topic contains the wildcard '{(char)b}' at byte {i}; wildcards are only allowed in patterns";
                        return false;
                    }

                    bool wholeSegment = i == segmentStart && (i + 1 == s.Length || s[i + 1] == Separator);
                    if (!wholeSegment)
                    {
                        error = $"pattern has '{(char)b}' inside a segment at byte {i}; a wildcard must be a whole segment";
                        return false;
                    }

                    if (b == TailWildcard && i + 1 != s.Length)
                    {
                        error = $"pattern has '>' at byte {i} before the last segment; '>' may only be the last segment";
                        return false;
                    }
                }
                else if (b == (byte)' ' || (b >= 0x09 && b <= 0x0D))
                {
                    error = $"{what} contains whitespace at byte {i}";
                    return false;
                }
                else if (b < 0x20 || b == 0x7F)
                {
                    error = $"{what} contains a control character at byte {i}";
                    return false;
                }

                i++;
                continue;
            }

            if (Rune.DecodeFromUtf8(s[i..], out Rune rune, out int consumed) != System.Buffers.OperationStatus.Done)
            {
                error = $"{what} is not valid UTF-8 at byte {i}";
                return false;
            }

            if (Rune.IsWhiteSpace(rune))
            {
                error = $"{what} contains whitespace (U+{rune.Value:X4}) at byte {i}";
                return false;
            }

            if (Rune.IsControl(rune))
            {
                error = $"{what} contains a control character (U+{rune.Value:X4}) at byte {i}";
                return false;
            }

            i += consumed;
        }

        if (segmentStart == s.Length)
        {
            error = EmptySegment(what, s.Length);
            return false;
        }

        error = null;
        return true;
    }

    private static string EmptySegment(string what, int at) =>
        $"{what} has an empty segment at byte {at} (a leading, trailing or doubled '.')";
}
