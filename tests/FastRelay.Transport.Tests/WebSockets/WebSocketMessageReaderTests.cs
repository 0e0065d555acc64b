using System.Buffers;
using System.Text;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

public class WebSocketMessageReaderTests
{
    private static byte[] Bytes(int length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static void AssertProtocolError(ReadResult result, ushort expectedCode)
    {
        Assert.Equal(WebSocketReadStatus.ProtocolError, result.Status);
        Assert.Equal(expectedCode, result.CloseCode);
        Assert.False(string.IsNullOrEmpty(result.Error));
    }

    [Fact]
    public void Masked_binary_frame_is_unmasked()
    {
        byte[] payload = Bytes(100);

        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Binary, payload));

        Assert.Equal(WebSocketReadStatus.Message, result.Status);
        Assert.Equal(WebSocketOpcode.Binary, result.Opcode);
        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Masked_text_frame_is_returned_as_text()
    {
        byte[] payload = Encoding.UTF8.GetBytes("héllo wörld €");

        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Text, payload));

        Assert.Equal(WebSocketReadStatus.Message, result.Status);
        Assert.Equal(WebSocketOpcode.Text, result.Opcode);
        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Empty_binary_message_is_returned_with_an_empty_payload()
    {
        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Binary, []));

        Assert.Equal(WebSocketReadStatus.Message, result.Status);
        Assert.Empty(result.Payload);
    }

    [Theory]
    [InlineData(126)]
    [InlineData(300)]
    [InlineData(65535)]
    public void Payload_with_16_bit_length_is_read(int length)
    {
        byte[] payload = Bytes(length);
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Binary, payload);
        Assert.Equal(126, frame[1] & 0x7F);

        ReadResult result = ReadResult.ReadOne(frame);

        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Payload_with_64_bit_length_is_read()
    {
        byte[] payload = Bytes(70_000);
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Binary, payload);
        Assert.Equal(127, frame[1] & 0x7F);

        ReadResult result = ReadResult.ReadOne(frame);

        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Consecutive_messages_in_one_buffer_are_read_in_order()
    {
        byte[] first = Bytes(10, 1), second = Bytes(200, 2), third = Encoding.UTF8.GetBytes("third");
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, first),
            ClientFrame.Build(WebSocketOpcode.Binary, second),
            ClientFrame.Build(WebSocketOpcode.Text, third));
        using var reader = new WebSocketMessageReader(1024);

        List<ReadResult> results = ReadResult.ReadAll(reader, bytes);

        Assert.Equal([first, second, third], results.Select(r => r.Payload));
        Assert.Equal([WebSocketOpcode.Binary, WebSocketOpcode.Binary, WebSocketOpcode.Text], results.Select(r => r.Opcode));
    }

    [Fact]
    public void Unmasked_client_frame_is_rejected_with_1002()
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Binary, Bytes(5), masked: false)), 1002);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(7)]
    public void Frame_with_rsv_bits_is_rejected_with_1002(byte rsv)
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Binary, Bytes(5), rsv: rsv)), 1002);
    }

    [Theory]
    [InlineData(0x3)]
    [InlineData(0x4)]
    [InlineData(0x5)]
    [InlineData(0x6)]
    [InlineData(0x7)]
    [InlineData(0xB)]
    [InlineData(0xC)]
    [InlineData(0xD)]
    [InlineData(0xE)]
    [InlineData(0xF)]
    public void Reserved_opcode_is_rejected_with_1002(byte opcode)
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build((WebSocketOpcode)opcode, Bytes(5))), 1002);
    }

    [Theory]
    [InlineData(WebSocketOpcode.Ping)]
    [InlineData(WebSocketOpcode.Pong)]
    [InlineData(WebSocketOpcode.Close)]
    public void Fragmented_control_frame_is_rejected_with_1002(WebSocketOpcode opcode)
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(opcode, [0x03, 0xE8], fin: false)), 1002);
    }

    [Theory]
    [InlineData(WebSocketOpcode.Ping)]
    [InlineData(WebSocketOpcode.Pong)]
    [InlineData(WebSocketOpcode.Close)]
    public void Control_frame_over_125_bytes_is_rejected_with_1002(WebSocketOpcode opcode)
    {
        byte[] payload = Bytes(126);
        payload[0] = 0x03;
        payload[1] = 0xE8;

        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(opcode, payload)), 1002);
    }

    [Fact]
    public void Ping_of_125_bytes_is_returned_with_its_payload()
    {
        byte[] payload = Bytes(125);

        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Ping, payload));

        Assert.Equal(WebSocketReadStatus.Ping, result.Status);
        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Pong_is_returned_with_its_payload()
    {
        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Pong, "beat"u8));

        Assert.Equal(WebSocketReadStatus.Pong, result.Status);
        Assert.Equal("beat"u8.ToArray(), result.Payload);
    }

    [Fact]
    public void Fragmented_message_with_interleaved_ping_is_reassembled()
    {
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Text, "Hel"u8, fin: false),
            ClientFrame.Build(WebSocketOpcode.Ping, "are you there"u8),
            ClientFrame.Build(WebSocketOpcode.Continuation, "lo, "u8, fin: false),
            ClientFrame.Build(WebSocketOpcode.Pong, "p"u8),
            ClientFrame.Build(WebSocketOpcode.Continuation, "world"u8, fin: true));
        using var reader = new WebSocketMessageReader(1024);

        List<ReadResult> results = ReadResult.ReadAll(reader, bytes);

        Assert.Equal([WebSocketReadStatus.Ping, WebSocketReadStatus.Pong, WebSocketReadStatus.Message], results.Select(r => r.Status));
        Assert.Equal("are you there"u8.ToArray(), results[0].Payload);
        Assert.Equal(WebSocketOpcode.Text, results[2].Opcode);
        Assert.Equal("Hello, world", Encoding.UTF8.GetString(results[2].Payload));
    }

    [Fact]
    public void Fragmented_binary_message_larger_than_the_first_rent_is_reassembled()
    {
        byte[] payload = Bytes(200_000);
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, payload.AsSpan(0, 10), fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, payload.AsSpan(10, 99_990), fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, payload.AsSpan(100_000), fin: true));

        ReadResult result = ReadResult.ReadOne(bytes, maxMessageBytes: 200_000);

        Assert.Equal(WebSocketOpcode.Binary, result.Opcode);
        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Continuation_without_a_message_in_progress_is_rejected_with_1002()
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Continuation, "x"u8)), 1002);
    }

    [Fact]
    public void Continuation_after_a_completed_message_is_rejected_with_1002()
    {
        using var reader = new WebSocketMessageReader(1024);
        List<ReadResult> results = ReadResult.ReadAll(reader, ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, "a"u8, fin: true),
            ClientFrame.Build(WebSocketOpcode.Continuation, "b"u8)));

        Assert.Equal(WebSocketReadStatus.Message, results[0].Status);
        AssertProtocolError(results[1], 1002);
    }

    [Theory]
    [InlineData(WebSocketOpcode.Text)]
    [InlineData(WebSocketOpcode.Binary)]
    public void New_data_frame_during_a_fragmented_message_is_rejected_with_1002(WebSocketOpcode opcode)
    {
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, "part"u8, fin: false),
            ClientFrame.Build(opcode, "new"u8));

        AssertProtocolError(ReadResult.ReadOne(bytes), 1002);
    }

    [Fact]
    public void Length_with_the_top_bit_set_is_rejected_with_1002()
    {
        byte[] header = ClientFrame.Build(WebSocketOpcode.Binary, [], declaredLength: 0x8000_0000_0000_0000UL);

        AssertProtocolError(ReadResult.ReadOne(header), 1002);
    }

    [Fact]
    public void Oversized_message_is_rejected_with_1009_before_its_payload_arrives()
    {
        // Only the header: 2 + 2 + 4 bytes declaring 1000 bytes of payload.
        byte[] header = ClientFrame.Build(WebSocketOpcode.Binary, [], declaredLength: 1000);
        Assert.Equal(8, header.Length);
        using var reader = new WebSocketMessageReader(maxMessageBytes: 100);

        List<ReadResult> results = ReadResult.ReadAll(reader, header);

        AssertProtocolError(Assert.Single(results), 1009);
        Assert.False(reader.HoldsBuffer);
    }

    [Fact]
    public void Fragments_adding_up_past_the_limit_are_rejected_with_1009()
    {
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, Bytes(60), fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, [], declaredLength: 41));

        AssertProtocolError(ReadResult.ReadOne(bytes, maxMessageBytes: 100), 1009);
    }

    [Fact]
    public void Message_of_exactly_the_limit_is_accepted()
    {
        byte[] payload = Bytes(100);
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, payload.AsSpan(0, 60), fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, payload.AsSpan(60)));

        ReadResult result = ReadResult.ReadOne(bytes, maxMessageBytes: 100);

        Assert.Equal(WebSocketReadStatus.Message, result.Status);
        Assert.Equal(payload, result.Payload);
    }

    [Fact]
    public void Utf8_character_split_across_fragments_is_accepted()
    {
        // "€" is E2 82 AC: the first fragment ends inside it.
        byte[] text = Encoding.UTF8.GetBytes("price: €5");
        int split = Array.IndexOf(text, (byte)0xE2) + 1;
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Text, text.AsSpan(0, split), fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, text.AsSpan(split)));

        ReadResult result = ReadResult.ReadOne(bytes);

        Assert.Equal(WebSocketReadStatus.Message, result.Status);
        Assert.Equal("price: €5", Encoding.UTF8.GetString(result.Payload));
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0x41, 0xC0, 0x80 })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })]
    [InlineData(new byte[] { 0x41, 0xE2, 0x82 })]
    public void Invalid_utf8_text_is_rejected_with_1007(byte[] text)
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Text, text)), 1007);
    }

    [Fact]
    public void Text_ending_inside_a_character_after_fragments_is_rejected_with_1007()
    {
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Text, "ok"u8, fin: false),
            ClientFrame.Build(WebSocketOpcode.Continuation, [0xE2, 0x82]));

        AssertProtocolError(ReadResult.ReadOne(bytes), 1007);
    }

    [Fact]
    public void Binary_message_is_not_checked_for_utf8()
    {
        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Binary, [0xFF, 0xC0, 0x80]));

        Assert.Equal(WebSocketReadStatus.Message, result.Status);
    }

    [Fact]
    public void Close_without_body_reports_1005()
    {
        ReadResult result = ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Close, []));

        Assert.Equal(WebSocketReadStatus.Close, result.Status);
        Assert.Equal(WebSocketCloseCode.NoStatusReceived, result.CloseCode);
        Assert.Empty(result.CloseReason);
    }

    [Fact]
    public void Close_with_code_and_reason_reports_both()
    {
        ReadResult result = ReadResult.ReadOne(ClientFrame.Close(1001, "bye ☺"u8));

        Assert.Equal(WebSocketReadStatus.Close, result.Status);
        Assert.Equal(1001, result.CloseCode);
        Assert.Equal("bye ☺", Encoding.UTF8.GetString(result.CloseReason));
    }

    [Fact]
    public void Close_body_of_one_byte_is_rejected_with_1002()
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Build(WebSocketOpcode.Close, [0x03])), 1002);
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(1001)]
    [InlineData(1002)]
    [InlineData(1003)]
    [InlineData(1007)]
    [InlineData(1008)]
    [InlineData(1011)]
    [InlineData(1014)]
    [InlineData(3000)]
    [InlineData(4999)]
    public void Close_with_valid_code_is_accepted(ushort code)
    {
        ReadResult result = ReadResult.ReadOne(ClientFrame.Close(code));

        Assert.Equal(WebSocketReadStatus.Close, result.Status);
        Assert.Equal(code, result.CloseCode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(999)]
    [InlineData(1004)]
    [InlineData(1005)]
    [InlineData(1006)]
    [InlineData(1015)]
    [InlineData(1016)]
    [InlineData(2999)]
    [InlineData(5000)]
    [InlineData(65535)]
    public void Close_with_invalid_code_is_rejected_with_1002(ushort code)
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Close(code)), 1002);
    }

    [Fact]
    public void Close_reason_with_invalid_utf8_is_rejected_with_1007()
    {
        AssertProtocolError(ReadResult.ReadOne(ClientFrame.Close(1000, [0x61, 0xFF])), 1007);
    }

    [Fact]
    public void Close_is_terminal_and_reported_again_without_consuming_more()
    {
        using var reader = new WebSocketMessageReader(1024);
        byte[] trailing = ClientFrame.Build(WebSocketOpcode.Binary, "late"u8);
        var buffer = new ReadOnlySequence<byte>(ClientFrame.Concat(ClientFrame.Close(1000, "done"u8), trailing));

        WebSocketReadStatus first = reader.TryRead(ref buffer, out WebSocketMessage firstMessage);
        ushort firstCode = firstMessage.CloseCode;
        WebSocketReadStatus second = reader.TryRead(ref buffer, out WebSocketMessage secondMessage);

        Assert.Equal(WebSocketReadStatus.Close, first);
        Assert.Equal(WebSocketReadStatus.Close, second);
        Assert.Equal(firstCode, secondMessage.CloseCode);
        Assert.Equal(trailing.Length, buffer.Length);
    }

    [Fact]
    public void Protocol_error_is_terminal()
    {
        using var reader = new WebSocketMessageReader(1024);
        var buffer = new ReadOnlySequence<byte>(ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, "x"u8, masked: false),
            ClientFrame.Build(WebSocketOpcode.Binary, "valid"u8)));

        Assert.Equal(WebSocketReadStatus.ProtocolError, reader.TryRead(ref buffer, out _));
        Assert.Equal(WebSocketReadStatus.ProtocolError, reader.TryRead(ref buffer, out WebSocketMessage again));
        Assert.Equal(1002, again.CloseCode);
    }

    [Fact]
    public void Partial_header_needs_more_data_and_is_left_in_the_buffer()
    {
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Binary, Bytes(300));
        using var reader = new WebSocketMessageReader(1024);
        var buffer = new ReadOnlySequence<byte>(frame, 0, 5);

        WebSocketReadStatus status = reader.TryRead(ref buffer, out _);

        Assert.Equal(WebSocketReadStatus.NeedMoreData, status);
        Assert.Equal(5, buffer.Length);
    }

    [Fact]
    public void Partial_payload_is_consumed_as_it_arrives()
    {
        // The pipe must not have to hold a whole frame: payload bytes are taken as soon as the header is complete.
        byte[] payload = Bytes(10_000);
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Binary, payload);
        using var reader = new WebSocketMessageReader(1 << 20);
        var buffer = new ReadOnlySequence<byte>(frame, 0, 5_000);

        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref buffer, out _));
        Assert.Equal(0, buffer.Length);

        buffer = new ReadOnlySequence<byte>(frame, 5_000, frame.Length - 5_000);
        Assert.Equal(WebSocketReadStatus.Message, reader.TryRead(ref buffer, out WebSocketMessage message));
        Assert.Equal(payload, message.Payload.ToArray());
    }

    [Fact]
    public void Partial_control_frame_is_left_in_the_buffer_until_whole()
    {
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Ping, Bytes(50));
        using var reader = new WebSocketMessageReader(1024);
        var buffer = new ReadOnlySequence<byte>(frame, 0, frame.Length - 1);

        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref buffer, out _));
        Assert.Equal(frame.Length - 1, buffer.Length);
    }

    [Fact]
    public void Frames_split_at_every_offset_across_two_segments_give_the_same_results()
    {
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Text, "frag"u8, fin: false),
            ClientFrame.Build(WebSocketOpcode.Ping, "p"u8),
            ClientFrame.Build(WebSocketOpcode.Continuation, Encoding.UTF8.GetBytes("mented €"), fin: true),
            ClientFrame.Build(WebSocketOpcode.Binary, Bytes(300)),
            ClientFrame.Close(1000, "bye"u8));
        List<ReadResult> expected;
        using (var whole = new WebSocketMessageReader(1024))
        {
            expected = ReadResult.ReadAll(whole, bytes);
        }

        Assert.Equal(
            [WebSocketReadStatus.Ping, WebSocketReadStatus.Message, WebSocketReadStatus.Message, WebSocketReadStatus.Close],
            expected.Select(r => r.Status));
        Assert.Equal("fragmented €", Encoding.UTF8.GetString(expected[1].Payload));

        for (int cut = 1; cut < bytes.Length; cut++)
        {
            // One sequence of two segments...
            using (var reader = new WebSocketMessageReader(1024))
            {
                ReadOnlySequence<byte> buffer = Sequences.Split(bytes, cut);
                Assert.Equal(expected, ReadResult.ReadAll(reader, ref buffer));
            }

            // ...and the same bytes arriving in two reads.
            using (var reader = new WebSocketMessageReader(1024))
            {
                Assert.Equal(expected, ReadResult.ReadChunked(reader, [bytes[..cut], bytes[cut..]]));
            }
        }
    }

    [Fact]
    public void Frames_arriving_one_byte_at_a_time_give_the_same_results()
    {
        byte[] payload = Bytes(70_000);
        byte[] bytes = ClientFrame.Concat(
            ClientFrame.Build(WebSocketOpcode.Binary, payload.AsSpan(0, 1000), fin: false),
            ClientFrame.Build(WebSocketOpcode.Ping, "p"u8),
            ClientFrame.Build(WebSocketOpcode.Continuation, payload.AsSpan(1000)));
        using var reader = new WebSocketMessageReader(1 << 20);

        List<ReadResult> results = ReadResult.ReadChunked(reader, bytes.Select(b => new[] { b }));

        Assert.Equal([WebSocketReadStatus.Ping, WebSocketReadStatus.Message], results.Select(r => r.Status));
        Assert.Equal(payload, results[1].Payload);
    }

    [Fact]
    public void Idle_reader_holds_no_buffer()
    {
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Binary, Bytes(1000));
        using var reader = new WebSocketMessageReader(1 << 20);

        var buffer = new ReadOnlySequence<byte>(frame, 0, 500);
        reader.TryRead(ref buffer, out _);
        Assert.True(reader.HoldsBuffer);

        buffer = new ReadOnlySequence<byte>(frame, 500, frame.Length - 500);
        Assert.Equal(WebSocketReadStatus.Message, reader.TryRead(ref buffer, out _));
        Assert.True(reader.HoldsBuffer);

        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref buffer, out _));
        Assert.False(reader.HoldsBuffer);
    }

    [Fact]
    public void Reader_keeps_its_buffer_between_fragments()
    {
        using var reader = new WebSocketMessageReader(1024);
        var buffer = new ReadOnlySequence<byte>(ClientFrame.Build(WebSocketOpcode.Binary, "first"u8, fin: false));

        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref buffer, out _));
        Assert.True(reader.HoldsBuffer);

        buffer = new ReadOnlySequence<byte>(ClientFrame.Build(WebSocketOpcode.Continuation, " second"u8));
        Assert.Equal(WebSocketReadStatus.Message, reader.TryRead(ref buffer, out WebSocketMessage message));
        Assert.Equal("first second", Encoding.UTF8.GetString(message.Payload.Span));
    }

    [Fact]
    public void Dispose_returns_the_buffer_and_later_reads_throw()
    {
        var reader = new WebSocketMessageReader(1024);
        var buffer = new ReadOnlySequence<byte>(ClientFrame.Build(WebSocketOpcode.Binary, "part"u8, fin: false));
        reader.TryRead(ref buffer, out _);
        Assert.True(reader.HoldsBuffer);

        reader.Dispose();

        Assert.False(reader.HoldsBuffer);
        Assert.Throws<ObjectDisposedException>(() =>
        {
            var empty = ReadOnlySequence<byte>.Empty;
            reader.TryRead(ref empty, out _);
        });
    }

    [Fact]
    public void Large_declared_length_does_not_rent_its_full_size_up_front()
    {
        byte[] header = ClientFrame.Build(WebSocketOpcode.Binary, [], declaredLength: 10_000_000);
        byte[] frame = ClientFrame.Concat(header, Bytes(100));
        using var reader = new WebSocketMessageReader(16 << 20);
        var buffer = new ReadOnlySequence<byte>(frame);

        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref buffer, out _));
        Assert.True(reader.HoldsBuffer);
        Assert.True(reader.BufferCapacity < 1 << 20, $"rented {reader.BufferCapacity} bytes for 100 received");
    }
}
