namespace FastRelay.Client;

/// <summary>
/// One connection's byte transport: WebSocket (one binary message per envelope) or a raw TCP/Unix stream
/// (4-byte big-endian length prefix per envelope). The client's single writer loop calls the send side; its single
/// receive loop calls <see cref="ReceiveAsync"/>; <see cref="Abort"/> may be called from any thread.
/// </summary>
internal interface IClientTransport : IAsyncDisposable
{
    /// <summary>Sends one envelope, or buffers it until <see cref="FlushAsync"/>. The memory may be reused once this completes.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> envelope, CancellationToken ct);

    /// <summary>Writes out whatever <see cref="SendAsync"/> buffered (one syscall for a batch of envelopes).</summary>
    ValueTask FlushAsync(CancellationToken ct);

    /// <summary>
    /// Reads envelopes and hands each to <paramref name="receiver"/> until the peer closes the connection (returns the
    /// peer's close reason, if it gave one) or the connection fails (throws).
    /// </summary>
    Task<string?> ReceiveAsync(IEnvelopeReceiver receiver, CancellationToken ct);

    /// <summary>Starts a graceful close (socket shutdown / WebSocket close frame); the receive side then sees the end.</summary>
    ValueTask CloseAsync(CancellationToken ct);

    /// <summary>Tears the connection down at once; pending sends and receives fail. Thread-safe.</summary>
    void Abort();
}

/// <summary>Consumes received envelopes on the receive loop.</summary>
internal interface IEnvelopeReceiver
{
    /// <summary>One whole envelope, valid only during the call. Throwing ends the connection.</summary>
    void OnEnvelope(ReadOnlyMemory<byte> envelope);
}
