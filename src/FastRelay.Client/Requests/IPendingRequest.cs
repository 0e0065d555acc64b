using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>A request waiting for the reply that carries its request id.</summary>
internal interface IPendingRequest
{
    ulong RequestId { get; }

    /// <summary>What was asked, for error messages ("PUB to 'orders'").</summary>
    string Describe();

    /// <summary>Called on the receive loop with the ACK/WELCOME/PONG/ERROR/BACKOFF for this request. Must not block.</summary>
    void OnReply(in Envelope reply);

    /// <summary>Fails the request (timeout, connection loss); a no-op when it already completed.</summary>
    void Fail(Exception error);
}
