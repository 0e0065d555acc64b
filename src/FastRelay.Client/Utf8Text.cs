using System.Text;

namespace FastRelay.Client;

/// <summary>UTF-8 checks and conversions for the string fields the client sends and receives.</summary>
internal static class Utf8Text
{
    public static void ThrowIfTooLong(string? value, int maxBytes, string paramName)
    {
        if (value is not null && value.Length > 0 && ByteCount(value, maxBytes) > maxBytes)
        {
            throw new ArgumentException($"{paramName} is longer than {maxBytes} UTF-8 bytes.", paramName);
        }
    }

    /// <summary>The UTF-8 length of <paramref name="value"/>, counted exactly only when it could be within the limit.</summary>
    public static int ByteCount(string value, int maxBytes) =>
        value.Length > maxBytes ? value.Length : Encoding.UTF8.GetByteCount(value);

    /// <summary>Writes <paramref name="value"/> into <paramref name="scratch"/> at <paramref name="offset"/> and returns the slice.</summary>
    public static ReadOnlyMemory<byte> Write(byte[] scratch, ref int offset, string value)
    {
        int written = Encoding.UTF8.GetBytes(value, scratch.AsSpan(offset));
        var slice = new ReadOnlyMemory<byte>(scratch, offset, written);
        offset += written;
        return slice;
    }

    public static int MaxByteCount(string? value) => value is null ? 0 : Encoding.UTF8.GetMaxByteCount(value.Length);

    /// <summary>True when the UTF-8 bytes spell <paramref name="value"/> (no allocation for the short strings of the protocol).</summary>
    public static bool Matches(ReadOnlySpan<byte> utf8, string value)
    {
        if (utf8.Length > 1024)
        {
            return Encoding.UTF8.GetString(utf8) == value;
        }

        Span<char> chars = stackalloc char[utf8.Length];
        int count = Encoding.UTF8.GetChars(utf8, chars);
        return chars[..count].SequenceEqual(value);
    }
}
