using System.Buffers;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

public class WebSocketAllocationTests
{
    [Fact]
    public void Reading_10000_masked_binary_messages_and_writing_their_headers_allocates_nothing()
    {
        // 100 frames per batch, mixing 7-bit and 16-bit lengths so every unmask path runs.
        byte[] small = new byte[100], large = new byte[1000];
        new Random(5).NextBytes(small);
        new Random(6).NextBytes(large);
        byte[] batch = ClientFrame.Concat(Enumerable.Range(0, 100)
            .Select(i => ClientFrame.Build(WebSocketOpcode.Binary, i % 2 == 0 ? small : large))
            .ToArray());
        using var reader = new WebSocketMessageReader(64 * 1024);

        long checksum = ReadBatches(reader, batch, batches: 10);
        long before = GC.GetAllocatedBytesForCurrentThread();
        checksum += ReadBatches(reader, batch, batches: 100);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(110 * (50 * (100 + 4 + 2) + 50 * (1000 + 4 + 4)), checksum);
        Assert.True(allocated < 1024, $"allocated {allocated} bytes for 10,000 messages");
        Assert.False(reader.HoldsBuffer);
    }

    private static long ReadBatches(WebSocketMessageReader reader, byte[] batch, int batches)
    {
        long total = 0;
        Span<byte> header = stackalloc byte[WebSocketFrameWriter.MaxHeaderSize];
        for (int b = 0; b < batches; b++)
        {
            var buffer = new ReadOnlySequence<byte>(batch);
            while (reader.TryRead(ref buffer, out WebSocketMessage message) == WebSocketReadStatus.Message)
            {
                int payloadLength = message.Payload.Length;
                total += payloadLength + WebSocketFrameWriter.WriteHeader(header, WebSocketOpcode.Binary, payloadLength);

                // Also sum the header we would relay with, so the work is not optimised away.
                total += header[0] == 0x82 ? 4 : 0;
            }
        }

        return total;
    }
}
