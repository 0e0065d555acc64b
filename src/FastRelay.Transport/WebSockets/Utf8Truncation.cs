using System.Runtime.CompilerServices;

namespace FastRelay.Transport.WebSockets;

/// <summary>Cuts UTF-8 text to a byte budget on a character boundary.</summary>
internal static class Utf8Truncation
{
    /// <summary>The longest prefix of <paramref name="utf8"/> within <paramref name="maxBytes"/> that does not split a sequence.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int FitLength(ReadOnlySpan<byte> utf8, int maxBytes)
    {
        if (utf8.Length <= maxBytes)
        {
            return utf8.Length;
        }

        // utf8[cut] is the first byte left out: while it is a continuation byte (10xxxxxx), the cut splits a sequence.
        int cut = maxBytes;
        while (cut > 0 && (utf8[cut] & 0xC0) == 0x80)
        {
            cut--;
        }

        return cut;
    }
}
