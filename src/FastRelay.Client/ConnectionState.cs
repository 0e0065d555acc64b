namespace FastRelay.Client;

/// <summary>Where a client is in its life: connected, reconnecting after its connection dropped, or closed for good.</summary>
public enum ConnectionState
{
    /// <summary>ConnectAsync has not finished yet.</summary>
    Connecting,

    /// <summary>Connected: requests are sent.</summary>
    Connected,

    /// <summary>The connection dropped and the client is reconnecting (<see cref="ReconnectOptions"/>): requests fail fast.</summary>
    Reconnecting,

    /// <summary>Closed by the application, by the server without reconnect, or reconnecting gave up. Final.</summary>
    Closed,
}
