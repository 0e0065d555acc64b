using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FastRelay.Transport.WebSockets;

/// <summary>RFC 6455 §5.3 masking: XOR with a rotating 4-byte key, vectorised.</summary>
/// <remarks>
/// The key is held as a <see cref="uint"/> loaded in native byte order from the wire, so byte <c>i</c> of its
/// memory is key byte <c>i</c> on any endianness; widening it to 8, 16 or 32 bytes keeps that alignment.
/// </remarks>
internal static class WebSocketMask
{
    /// <summary>Reads the 4 masking-key bytes as they appear on the wire.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ReadKey(ReadOnlySpan<byte> source) => MemoryMarshal.Read<uint>(source);

    /// <summary>
    /// Writes <paramref name="source"/> XOR the key into <paramref name="destination"/>, the first byte using key byte
    /// <paramref name="keyOffset"/>; returns the key offset for the byte that follows.
    /// </summary>
    public static int Apply(ReadOnlySpan<byte> source, Span<byte> destination, uint key, int keyOffset)
    {
        if (destination.Length < source.Length)
        {
            ThrowDestinationTooShort();
        }

        uint rotated = Rotate(key, keyOffset);
        ref byte src = ref MemoryMarshal.GetReference(source);
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        nuint length = (nuint)source.Length;
        nuint i = 0;

        if (Vector256.IsHardwareAccelerated && length >= (nuint)Vector256<byte>.Count)
        {
            Vector256<byte> mask = Vector256.Create(rotated).AsByte();
            nuint last = length - (nuint)Vector256<byte>.Count;
            for (; i <= last; i += (nuint)Vector256<byte>.Count)
            {
                (Vector256.LoadUnsafe(ref src, i) ^ mask).StoreUnsafe(ref dst, i);
            }
        }

        if (Vector128.IsHardwareAccelerated && length - i >= (nuint)Vector128<byte>.Count)
        {
            Vector128<byte> mask = Vector128.Create(rotated).AsByte();
            nuint last = length - (nuint)Vector128<byte>.Count;
            for (; i <= last; i += (nuint)Vector128<byte>.Count)
            {
                (Vector128.LoadUnsafe(ref src, i) ^ mask).StoreUnsafe(ref dst, i);
            }
        }

        ulong wide = rotated | ((ulong)rotated << 32);
        for (; i + sizeof(ulong) <= length; i += sizeof(ulong))
        {
            ulong value = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref src, i)) ^ wide;
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, i), value);
        }

        ref byte keyBytes = ref Unsafe.As<uint, byte>(ref rotated);
        for (; i < length; i++)
        {
            Unsafe.Add(ref dst, i) = (byte)(Unsafe.Add(ref src, i) ^ Unsafe.Add(ref keyBytes, (int)(i & 3)));
        }

        return (keyOffset + source.Length) & 3;
    }

    /// <summary>Unmasks a possibly multi-segment <paramref name="source"/> into <paramref name="destination"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Apply(in ReadOnlySequence<byte> source, Span<byte> destination, uint key, int keyOffset)
    {
        if (source.IsSingleSegment)
        {
            return Apply(source.FirstSpan, destination, key, keyOffset);
        }

        return ApplyMultiSegment(source, destination, key, keyOffset);
    }

    private static int ApplyMultiSegment(in ReadOnlySequence<byte> source, Span<byte> destination, uint key, int keyOffset)
    {
        foreach (ReadOnlyMemory<byte> segment in source)
        {
            keyOffset = Apply(segment.Span, destination, key, keyOffset);
            destination = destination[segment.Length..];
        }

        return keyOffset;
    }

    /// <summary>Rotates the key so that its first memory byte is key byte <paramref name="offset"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Rotate(uint key, int offset)
    {
        int bits = (offset & 3) * 8;
        return BitConverter.IsLittleEndian ? BitOperations.RotateRight(key, bits) : BitOperations.RotateLeft(key, bits);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowDestinationTooShort() => throw new ArgumentException("Destination is shorter than the source.", "destination");
}
