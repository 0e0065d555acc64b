namespace FastRelay.Core.Sessions;

/// <summary>Why a session ends; transports map it to a WebSocket close code or a plain socket close.</summary>
public enum SessionCloseKind : byte
{
    /// <summary>The client closed, or the session ended normally.</summary>
    Normal,
    /// <summary>The server is shutting down or draining.</summary>
    GoingAway,
    /// <summary>The peer broke the framing or envelope rules.</summary>
    ProtocolError,
    /// <summary>Authentication failed or a policy was violated.</summary>
    PolicyViolation,
    /// <summary>A message exceeded the size limit.</summary>
    MessageTooBig,
    /// <summary>The consumer could not keep up and a frame that must not be dropped did not fit.</summary>
    SlowConsumer,
    /// <summary>An unexpected server failure.</summary>
    InternalError,
}

/// <summary>The reason a session closed: a kind and a human-readable text.</summary>
public sealed record SessionClose(SessionCloseKind Kind, string Reason);
