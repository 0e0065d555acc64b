namespace FastRelay.Client;

/// <summary>The server's acknowledgement of a publish: where the event landed in its topic's stream.</summary>
public readonly record struct PublishAck(string? Topic, ulong Epoch, ulong Seq, bool IsDuplicate);
