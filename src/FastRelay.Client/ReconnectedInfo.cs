namespace FastRelay.Client;

/// <summary>A dropped connection was replaced and every subscription was resubscribed.</summary>
/// <param name="Attempts">Connection attempts it took (1 = the first one worked).</param>
/// <param name="Outage">From noticing the drop to having resubscribed.</param>
/// <param name="Node">The server node that accepted the new session.</param>
public sealed record ReconnectedInfo(int Attempts, TimeSpan Outage, string? Node);
