using FastRelay.Protocol;

namespace FastRelay.Client;

/// <summary>Why a connection ended: closed by this client, closed by the server, or lost.</summary>
/// <param name="ByClient">True when <see cref="FastRelayClient.CloseAsync"/> or DisposeAsync ended it.</param>
/// <param name="ErrorCode">The code of the server's last connection-level ERROR, if it sent one.</param>
/// <param name="Reason">A human-readable reason.</param>
/// <param name="Exception">The exception pending requests and subscriptions failed with (null for a client close).</param>
public sealed record DisconnectInfo(bool ByClient, ErrorCode ErrorCode, string Reason, FastRelayException? Exception);
