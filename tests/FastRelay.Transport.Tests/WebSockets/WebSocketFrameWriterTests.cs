using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

public class WebSocketFrameWriterTests
{
    [Theory]
    [InlineData(0, 2)]
    [InlineData(125, 2)]
    [InlineData(126, 4)]
    [InlineData(65535, 4)]
    [InlineData(65536, 10)]
    [InlineData(long.MaxValue, 10)]
    public void Header_size_uses_the_minimal_length_encoding(long payloadLength, int expected)
    {
        Assert.Equal(expected, WebSocketFrameWriter.GetHeaderSize(payloadLength));
    }

    [Theory]
    [InlineData(125, new byte[] { 0x82, 125 })]
    [InlineData(126, new byte[] { 0x82, 126, 0x00, 0x7E })]
    [InlineData(65535, new byte[] { 0x82, 126, 0xFF, 0xFF })]
    [InlineData(65536, new byte[] { 0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 })]
    public void Header_encodes_length_big_endian_and_unmasked(long payloadLength, byte[] expected)
    {
        Span<byte> header = stackalloc byte[WebSocketFrameWriter.MaxHeaderSize];

        int written = WebSocketFrameWriter.WriteHeader(header, WebSocketOpcode.Binary, payloadLength);

        Assert.Equal(expected, header[..written].ToArray());
    }

    [Fact]
    public void Header_without_fin_clears_the_fin_bit()
    {
        Span<byte> header = stackalloc byte[WebSocketFrameWriter.MaxHeaderSize];

        WebSocketFrameWriter.WriteHeader(header, WebSocketOpcode.Text, 3, fin: false);

        Assert.Equal(0x01, header[0]);
    }

    [Fact]
    public void Header_into_too_small_destination_throws()
    {
        Assert.Throws<ArgumentException>(() => WebSocketFrameWriter.WriteHeader(new byte[3], WebSocketOpcode.Binary, 200));
    }

    [Fact]
    public void Negative_length_throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => WebSocketFrameWriter.GetHeaderSize(-1));
    }

    [Fact]
    public void Undefined_opcode_throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => WebSocketFrameWriter.WriteHeader(new byte[10], (WebSocketOpcode)3, 0));
    }

    [Fact]
    public void Control_frame_without_fin_throws()
    {
        Assert.Throws<ArgumentException>(() => WebSocketFrameWriter.WriteHeader(new byte[10], WebSocketOpcode.Ping, 0, fin: false));
    }

    [Fact]
    public void Frame_is_header_then_payload()
    {
        var output = new ArrayBufferWriter<byte>();
        byte[] payload = new byte[300];
        new Random(7).NextBytes(payload);

        WebSocketFrameWriter.WriteFrame(output, WebSocketOpcode.Binary, payload);

        Assert.Equal(4 + 300, output.WrittenCount);
        Assert.Equal(new byte[] { 0x82, 126, 0x01, 0x2C }, output.WrittenSpan[..4].ToArray());
        Assert.Equal(payload, output.WrittenSpan[4..].ToArray());
    }

    [Fact]
    public void Pong_echoes_the_payload()
    {
        var output = new ArrayBufferWriter<byte>();

        WebSocketFrameWriter.WritePong(output, "ping-data"u8);

        Assert.Equal([0x8A, 9, .. "ping-data"u8.ToArray()], output.WrittenSpan.ToArray());
    }

    [Fact]
    public void Pong_over_125_bytes_throws()
    {
        Assert.Throws<ArgumentException>(() => WebSocketFrameWriter.WritePong(new ArrayBufferWriter<byte>(), new byte[126]));
    }

    [Fact]
    public void Close_carries_code_and_reason()
    {
        var output = new ArrayBufferWriter<byte>();

        WebSocketFrameWriter.WriteClose(output, WebSocketCloseCode.GoingAway, "restart"u8);

        ReadOnlySpan<byte> frame = output.WrittenSpan;
        Assert.Equal(0x88, frame[0]);
        Assert.Equal(2 + 7, frame[1]);
        Assert.Equal(1001, BinaryPrimitives.ReadUInt16BigEndian(frame[2..]));
        Assert.Equal("restart", Encoding.UTF8.GetString(frame[4..]));
    }

    [Fact]
    public void Close_reason_is_truncated_to_123_bytes_without_splitting_a_character()
    {
        // 122 ASCII bytes then a 3-byte "€": the euro sign would straddle the 123-byte limit.
        byte[] reason = Encoding.UTF8.GetBytes(new string('a', 122) + "€€");
        var output = new ArrayBufferWriter<byte>();

        WebSocketFrameWriter.WriteClose(output, WebSocketCloseCode.NormalClosure, reason);

        ReadOnlySpan<byte> frame = output.WrittenSpan;
        Assert.Equal(2 + 122, frame[1]);
        Assert.Equal(new string('a', 122), Encoding.UTF8.GetString(frame[4..]));
    }

    [Fact]
    public void Close_reason_of_exactly_123_bytes_is_kept_whole()
    {
        byte[] reason = Encoding.UTF8.GetBytes(new string('b', 120) + "€");
        var output = new ArrayBufferWriter<byte>();

        WebSocketFrameWriter.WriteClose(output, WebSocketCloseCode.NormalClosure, reason);

        Assert.Equal(125, output.WrittenSpan[1]);
        Assert.Equal(reason, output.WrittenSpan[4..].ToArray());
    }

    [Fact]
    public void Close_with_string_reason_truncates_on_a_character_boundary()
    {
        var output = new ArrayBufferWriter<byte>();

        WebSocketFrameWriter.WriteClose(output, WebSocketCloseCode.ProtocolError, new string('c', 121) + "€");

        Assert.Equal(2 + 121, output.WrittenSpan[1]);
        Assert.Equal(new string('c', 121), Encoding.UTF8.GetString(output.WrittenSpan[4..]));
    }

    [Theory]
    [InlineData(1005)]
    [InlineData(1006)]
    [InlineData(999)]
    public void Close_with_a_code_that_must_not_be_sent_throws(ushort code)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => WebSocketFrameWriter.WriteClose(new ArrayBufferWriter<byte>(), code, default(ReadOnlySpan<byte>)));
    }
}
