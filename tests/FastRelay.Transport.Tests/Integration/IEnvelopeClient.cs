using FastRelay.Protocol;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>A test client that speaks envelopes over one of the relay's transports.</summary>
internal interface IEnvelopeClient : IAsyncDisposable
{
    /// <summary>Sends one encoded envelope in the transport's framing.</summary>
    Task SendEnvelopeAsync(byte[] envelope);

    /// <summary>Reads the next envelope; fails on anything else (a close frame, end of stream, a timeout).</summary>
    Task<Envelope> ReadEnvelopeAsync();
}
