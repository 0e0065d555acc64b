using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Engine;

/// <summary>Which topics announce joins and leaves to their subscribers (presence lists work on every topic).</summary>
public sealed class PresenceOptions
{
    /// <summary>Topic patterns whose subscribers receive PRESENCE join/leave frames, e.g. "rooms.&gt;".</summary>
    public List<string> Patterns { get; set; } = [];

    /// <summary>Largest presence info a subscriber may attach to its SUB, in bytes.</summary>
    public int MaxInfoBytes { get; set; } = 1024;

    private TopicPatternSet? _compiled;

    internal bool AnnouncesJoins(ReadOnlySpan<byte> topic) => _compiled is { IsEmpty: false } set && set.Allows(topic);

    public void Validate()
    {
        var compiled = new List<TopicPattern>();
        foreach (var text in Patterns)
        {
            if (!TopicPattern.TryParse(text, out var pattern, out var error))
            {
                throw new ArgumentException($"Presence pattern '{text}' is invalid: {error}.");
            }

            compiled.Add(pattern);
        }

        if (MaxInfoBytes is < 0 or > 64 * 1024)
        {
            throw new ArgumentException($"Presence:MaxInfoBytes = {MaxInfoBytes} is invalid: must be 0..65536.");
        }

        _compiled = new TopicPatternSet(compiled);
    }
}
