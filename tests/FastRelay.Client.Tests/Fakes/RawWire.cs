using System.Buffers.Binary;
using System.Net.Sockets;
using FastRelay.Protocol;

namespace FastRelay.Client.Tests.Fakes;

/// <summary>Raw framing (4-byte big-endian length + envelope) over a TCP or Unix socket.</summary>
internal sealed class RawWire(Socket socket) : IFakeWire
{
    private readonly NetworkStream _stream = new(socket, ownsSocket: true);

    public async Task<byte[]?> ReadAsync(CancellationToken ct)
    {
        var header = new byte[RawFraming.HeaderSize];
        int read = await _stream.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, ct);
        if (read < header.Length)
        {
            return null;
        }

        var body = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
        await _stream.ReadExactlyAsync(body, ct);
        return body;
    }

    public async Task WriteAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct)
    {
        var framed = new byte[RawFraming.HeaderSize + envelope.Length];
        RawFraming.WriteHeader(framed, envelope.Length);
        envelope.CopyTo(framed.AsMemory(RawFraming.HeaderSize));
        await _stream.WriteAsync(framed, ct);
    }

    public async Task WriteRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct) => await _stream.WriteAsync(bytes, ct);

    public void Abort() => socket.Close(0);

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
