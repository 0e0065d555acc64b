using System.Buffers;

namespace FastRelay.Protocol.Tests;

public sealed class RawFramingTests
{
    private static ReadOnlySequence<byte> Segmented(byte[] bytes, params int[] cuts)
    {
        var segments = new List<byte[]>();
        int start = 0;
        foreach (int cut in cuts.Append(bytes.Length))
        {
            segments.Add(bytes[start..cut]);
            start = cut;
        }

        Segment? first = null, last = null;
        foreach (var s in segments)
        {
            var next = new Segment(s, last?.RunningIndex + last?.Memory.Length ?? 0);
            if (last is null)
            {
                first = next;
            }
            else
            {
                last.SetNext(next);
            }

            last = next;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes, long runningIndex)
        {
            Memory = bytes;
            RunningIndex = runningIndex;
        }

        public void SetNext(Segment next) => Next = next;
    }

    [Fact]
    public void Two_frames_back_to_back_are_read_in_order()
    {
        byte[] bytes = [0, 0, 0, 2, 0xAA, 0xBB, 0, 0, 0, 1, 0xCC];
        var buffer = new ReadOnlySequence<byte>(bytes);
        Assert.Equal(RawFrameStatus.Complete, RawFraming.TryRead(ref buffer, 100, out var body, out var length));
        Assert.Equal(2U, length);
        Assert.Equal(new byte[] { 0xAA, 0xBB }, body.ToArray());
        Assert.Equal(RawFrameStatus.Complete, RawFraming.TryRead(ref buffer, 100, out body, out _));
        Assert.Equal(new byte[] { 0xCC }, body.ToArray());
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Frame_split_at_every_offset_across_segments_is_read_whole()
    {
        byte[] bytes = [0, 0, 0, 5, 1, 2, 3, 4, 5];
        for (int cut = 1; cut < bytes.Length; cut++)
        {
            var buffer = Segmented(bytes, cut);
            Assert.Equal(RawFrameStatus.Complete, RawFraming.TryRead(ref buffer, 100, out var body, out _));
            Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, body.ToArray());
        }
    }

    [Fact]
    public void Partial_header_or_body_needs_more_data_and_consumes_nothing()
    {
        byte[] bytes = [0, 0, 0, 5, 1, 2];
        for (int length = 0; length <= bytes.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);
            Assert.Equal(RawFrameStatus.Incomplete, RawFraming.TryRead(ref buffer, 100, out _, out _));
            Assert.Equal(length, buffer.Length);
        }
    }

    [Fact]
    public void Length_over_the_limit_is_too_large_before_the_body_arrives()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0x7f, 0xff, 0xff, 0xff });
        Assert.Equal(RawFrameStatus.TooLarge, RawFraming.TryRead(ref buffer, 1 << 20, out _, out var declared));
        Assert.Equal(0x7fffffffU, declared);
    }

    [Fact]
    public void Zero_length_frame_is_reported_empty()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 0 });
        Assert.Equal(RawFrameStatus.Empty, RawFraming.TryRead(ref buffer, 100, out _, out _));
    }

    [Fact]
    public void Header_is_big_endian()
    {
        var header = new byte[4];
        RawFraming.WriteHeader(header, 0x01020304);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, header);
    }
}
