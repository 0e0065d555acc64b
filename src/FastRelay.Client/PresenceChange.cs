namespace FastRelay.Client;

/// <summary>Whether a client joined or left a topic.</summary>
public enum PresenceChangeKind
{
    Joined,
    Left,
}

/// <summary>A PRESENCE announcement: <see cref="ClientId"/> subscribed to, or left, <see cref="Topic"/> (left includes a dropped connection).</summary>
/// <param name="Topic">The topic.</param>
/// <param name="ClientId">Who joined or left.</param>
/// <param name="Kind">Joined or left.</param>
/// <param name="Info">The presence info of that client's subscription, or null.</param>
public sealed record PresenceChange(string Topic, string ClientId, PresenceChangeKind Kind, byte[]? Info);
