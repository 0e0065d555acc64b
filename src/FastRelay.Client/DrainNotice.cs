namespace FastRelay.Client;

/// <summary>The server announced it is going away (DRAIN): reconnect after <see cref="RetryAfter"/>, preferably to <see cref="Node"/>.</summary>
public sealed record DrainNotice(TimeSpan RetryAfter, string? Node);
