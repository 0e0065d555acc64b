using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastRelay.Protocol;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>A raw TCP or Unix-socket client: each envelope behind a 4-byte big-endian length.</summary>
internal sealed class RawClient : SocketClient, IEnvelopeClient
{
    private RawClient(Socket socket)
        : base(socket)
    {
    }

    public static async Task<RawClient> ConnectTcpAsync(IPEndPoint endPoint, int receiveBufferBytes = 0) =>
        new(await ConnectTcpSocketAsync(endPoint, receiveBufferBytes));

    public static async Task<RawClient> ConnectUnixAsync(string path) => new(await ConnectUnixSocketAsync(path));

    public static byte[] Frame(byte[] envelope)
    {
        var frame = new byte[4 + envelope.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)envelope.Length);
        envelope.CopyTo(frame, 4);
        return frame;
    }

    public Task SendEnvelopeAsync(byte[] envelope) => SendRawAsync(Frame(envelope));

    public async Task<Envelope> ReadEnvelopeAsync()
    {
        uint length = BinaryPrimitives.ReadUInt32BigEndian(await ReadExactAsync(4, "a length prefix"));
        Assert.InRange(length, 1u, (uint)ProtocolLimits.AbsoluteMaxMessageBytes);
        return Envelopes.Decode(await ReadExactAsync((int)length, "an envelope"));
    }
}
