using FastRelay.Core.Tenancy;

namespace FastRelay.Core.Engine;

/// <summary>How much history topics keep for replay: a default and per-pattern rules (first match wins).</summary>
public sealed class RetentionOptions
{
    /// <summary>Events kept per topic (0 = no replay).</summary>
    public int MaxEvents { get; set; } = 1024;

    /// <summary>Age after which an event leaves the retention window.</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Bytes of history the whole node may hold (split evenly over the shards; 0 = no node-wide bound), counted as the
    /// slabs the topics hold: the events, their 40-byte entry headers and the unused ends of slabs. Past it each shard
    /// drops the oldest retained event of its topics in turn, so history shrinks across every topic instead of memory
    /// growing with the number of topics. Resuming from a dropped position gets NOT_RECOVERED, as after MaxEvents or
    /// MaxAge.
    /// </summary>
    public long MaxBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Overrides for topics matching a pattern, e.g. { Pattern = "ticks.>", MaxEvents = 0 }.</summary>
    public List<RetentionRule> Rules { get; set; } = [];

    internal (int MaxEvents, long MaxAgeMs) Resolve(ReadOnlySpan<byte> topic)
    {
        foreach (var rule in Rules)
        {
            if (rule.Compiled!.Matches(topic))
            {
                return (rule.MaxEvents ?? MaxEvents, (long)(rule.MaxAge ?? MaxAge).TotalMilliseconds);
            }
        }

        return (MaxEvents, (long)MaxAge.TotalMilliseconds);
    }

    public void Validate()
    {
        if (MaxEvents is < 0 or > 1_000_000)
        {
            throw new ArgumentException($"Retention:MaxEvents = {MaxEvents} is invalid: must be 0..1000000.");
        }

        if (MaxBytes < 0)
        {
            throw new ArgumentException($"Retention:MaxBytes = {MaxBytes} is invalid: must be 0 (no bound) or positive.");
        }

        if (MaxAge <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Retention:MaxAge = {MaxAge} is invalid: must be positive.");
        }

        foreach (var rule in Rules)
        {
            if (!TopicPattern.TryParse(rule.Pattern, out var compiled, out var error))
            {
                throw new ArgumentException($"Retention rule pattern '{rule.Pattern}' is invalid: {error}.");
            }

            if (rule.MaxEvents is < 0 or > 1_000_000 || rule.MaxAge <= TimeSpan.Zero)
            {
                throw new ArgumentException($"Retention rule '{rule.Pattern}': MaxEvents must be 0..1000000 and MaxAge positive.");
            }

            rule.Compiled = compiled;
        }
    }
}

/// <summary>Retention for topics matching <see cref="Pattern"/>; unset values fall back to the defaults.</summary>
public sealed class RetentionRule
{
    public string Pattern { get; set; } = "";

    public int? MaxEvents { get; set; }

    public TimeSpan? MaxAge { get; set; }

    internal TopicPattern? Compiled { get; set; }
}

/// <summary>Idempotent publish: how long (client_id, message_id) is remembered, and how many per shard.</summary>
public sealed class DedupOptions
{
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(2);

    public int MaxEntriesPerShard { get; set; } = 262_144;

    public void Validate()
    {
        if (Window < TimeSpan.Zero || MaxEntriesPerShard < 0)
        {
            throw new ArgumentException("Dedup:Window must be ≥ 0 and Dedup:MaxEntriesPerShard ≥ 0.");
        }
    }
}

/// <summary>Consumer groups: lease, redelivery and bounds.</summary>
public sealed class GroupOptions
{
    /// <summary>Time a member has to GROUP_ACK an event before it goes to another member.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Deliveries of one event before it is dead-lettered to <c>$dlq.{group}</c>.</summary>
    public int MaxDeliveries { get; set; } = 5;

    /// <summary>Events a group holds waiting for a member with credit; when full, the topic's publishers get BACKOFF.</summary>
    public int PendingCapacity { get; set; } = 10_000;

    /// <summary>Credits (unacknowledged events per member) when the SUB does not say.</summary>
    public int DefaultCredits { get; set; } = 16;

    /// <summary>Largest credit a member may ask for.</summary>
    public int MaxCredits { get; set; } = 1024;

    public void Validate()
    {
        if (Lease <= TimeSpan.Zero || MaxDeliveries < 1 || PendingCapacity < 1 || DefaultCredits < 1 || MaxCredits < DefaultCredits)
        {
            throw new ArgumentException("Relay:Groups: Lease must be positive, MaxDeliveries/PendingCapacity/DefaultCredits ≥ 1, MaxCredits ≥ DefaultCredits.");
        }
    }
}
