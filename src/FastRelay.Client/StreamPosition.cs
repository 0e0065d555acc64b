namespace FastRelay.Client;

/// <summary>A place in a topic's stream: the topic's epoch and a seq in that epoch.</summary>
public readonly record struct StreamPosition(ulong Epoch, ulong Seq)
{
    public override string ToString() => $"{Epoch}:{Seq}";
}
