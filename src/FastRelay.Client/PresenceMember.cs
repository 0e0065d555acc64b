namespace FastRelay.Client;

/// <summary>One subscriber of a topic, as listed by <see cref="FastRelayClient.GetPresenceAsync"/>.</summary>
/// <param name="ClientId">The subscriber's client id.</param>
/// <param name="Info">The presence info its SUB carried (<see cref="SubscribeOptions.PresenceInfo"/>), or null.</param>
public sealed record PresenceMember(string ClientId, byte[]? Info);
