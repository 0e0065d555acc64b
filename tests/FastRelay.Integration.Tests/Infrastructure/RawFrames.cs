using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using FastRelay.Protocol;

namespace FastRelay.Integration.Tests.Infrastructure;

/// <summary>Length-prefixed envelopes over a raw socket, for tests that must behave unlike the .NET client.</summary>
public static class RawFrames
{
    public static async Task SendAsync(Socket socket, Envelope envelope)
    {
        var body = new ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(body, in envelope);
        var frame = new byte[4 + body.WrittenCount];
        BinaryPrimitives.WriteInt32BigEndian(frame, body.WrittenCount);
        body.WrittenSpan.CopyTo(frame.AsSpan(4));
        await socket.SendAsync(frame, SocketFlags.None);
    }

    public static async Task<(FrameType Type, ulong RequestId, ErrorCode ErrorCode)> ReceiveAsync(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var header = new byte[4];
        await ReadExactlyAsync(socket, header, cts.Token);
        var body = new byte[BinaryPrimitives.ReadInt32BigEndian(header)];
        await ReadExactlyAsync(socket, body, cts.Token);
        Assert.Equal(DecodeError.None, EnvelopeCodec.TryDecode(body, out var e, out _));
        return (e.Type, e.RequestId, e.ErrorCode);
    }

    /// <summary>True when the server closes the connection (reads return 0 or reset) within the timeout.</summary>
    public static async Task<bool> WaitForCloseAsync(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task ReadExactlyAsync(Socket socket, byte[] buffer, CancellationToken ct)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, ct);
            if (n == 0)
            {
                throw new IOException("connection closed");
            }

            read += n;
        }
    }
}
