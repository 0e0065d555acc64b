namespace FastRelay.Client.Tests.Fakes;

/// <summary>The server side of one connection: whole envelopes in and out, whatever the framing.</summary>
internal interface IFakeWire : IAsyncDisposable
{
    /// <summary>The next envelope from the client, or null when the client closed its side.</summary>
    Task<byte[]?> ReadAsync(CancellationToken ct);

    Task WriteAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct);

    /// <summary>Writes bytes as they are, framing included (to send broken frames).</summary>
    Task WriteRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct);

    /// <summary>Closes the connection abruptly.</summary>
    void Abort();
}
