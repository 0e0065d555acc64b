using FastRelay.Core.Engine;
using FastRelay.Core.FlowControl;
using FastRelay.Core.Tenancy;
using FastRelay.Protocol;

namespace FastRelay.Core;

/// <summary>Engine limits and sizes. Every value has a production default; see docs/operations.md.</summary>
public sealed class RelayOptions
{
    /// <summary>Number of shards (threads owning topics). 0 = one per processor.</summary>
    public int Shards { get; set; }

    /// <summary>Commands each shard inbox holds (power of two). A full inbox answers publishers with BACKOFF.</summary>
    public int ShardInboxCapacity { get; set; } = 16384;

    /// <summary>Frames a connection's outbox holds before droppable events are dropped and critical ones close it.</summary>
    public int OutboxCapacity { get; set; } = 65536;

    /// <summary>Soft cap on a connection's queued event bytes: above it droppable events are dropped and partials merged.</summary>
    public long OutboxMaxBytes { get; set; } = 4L << 20;

    /// <summary>Hard cap on queued event bytes: reaching it closes the connection as a slow consumer. 0 = 4 × OutboxMaxBytes.</summary>
    public long OutboxHardMaxBytes { get; set; }

    /// <summary>How long a connection may stay above <see cref="OutboxMaxBytes"/> before it is closed as a slow consumer.</summary>
    public TimeSpan SlowConsumerGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest envelope accepted from a client, in bytes.</summary>
    public int MaxMessageBytes { get; set; } = ProtocolLimits.DefaultMaxMessageBytes;

    /// <summary>Subscriptions one connection may hold.</summary>
    public int MaxSubscriptionsPerConnection { get; set; } = 1024;

    /// <summary>Publishes one tenant may have waiting for its turn on one shard; beyond it that tenant gets BACKOFF.</summary>
    public int TenantLaneCapacity { get; set; } = 4096;

    /// <summary>How long a publisher is told to wait when a shard inbox is full.</summary>
    public int BackoffRetryAfterMs { get; set; } = 50;

    /// <summary>How often the server publishes node statistics to <c>$sys.stats</c> (0 = never).</summary>
    public TimeSpan StatsInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Name of this node, sent in WELCOME.</summary>
    public string NodeName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>History kept per topic for replay on resume.</summary>
    public RetentionOptions Retention { get; set; } = new();

    /// <summary>Consumer groups: lease, redelivery, bounds.</summary>
    public GroupOptions Groups { get; set; } = new();

    /// <summary>Publish rates and connection counts.</summary>
    public LimitOptions Limits { get; set; } = new();

    /// <summary>Topics that announce joins and leaves.</summary>
    public PresenceOptions Presence { get; set; } = new();

    /// <summary>Idempotent-publish window.</summary>
    public DedupOptions Dedup { get; set; } = new();

    /// <summary>Tenants and their token secrets. Empty = one <c>default</c> tenant without tokens.</summary>
    public TenancyOptions Tenancy { get; set; } = new();

    public int EffectiveShards => Shards > 0 ? Shards : Environment.ProcessorCount;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok)
            {
                throw new ArgumentException($"Relay option '{name}' = {value} is invalid: {rule}.");
            }
        }

        static bool IsPow2(int v) => v >= 2 && (v & (v - 1)) == 0;
        Require(Shards is >= 0 and <= 1024, nameof(Shards), Shards, "must be 0 (one per processor) to 1024");
        Require(IsPow2(ShardInboxCapacity), nameof(ShardInboxCapacity), ShardInboxCapacity, "must be a power of two");
        Require(OutboxCapacity >= 16, nameof(OutboxCapacity), OutboxCapacity, "must be at least 16");
        Require(OutboxMaxBytes >= 64 * 1024, nameof(OutboxMaxBytes), OutboxMaxBytes, "must be at least 65536");
        Require(MaxMessageBytes is >= 256 and <= ProtocolLimits.AbsoluteMaxMessageBytes, nameof(MaxMessageBytes), MaxMessageBytes, $"must be 256..{ProtocolLimits.AbsoluteMaxMessageBytes}");
        Require(OutboxMaxBytes >= MaxMessageBytes, nameof(OutboxMaxBytes), OutboxMaxBytes, "must be at least MaxMessageBytes");
        Require(OutboxHardMaxBytes == 0 || OutboxHardMaxBytes >= OutboxMaxBytes, nameof(OutboxHardMaxBytes), OutboxHardMaxBytes, "must be 0 or at least OutboxMaxBytes");
        Require(SlowConsumerGrace > TimeSpan.Zero, nameof(SlowConsumerGrace), SlowConsumerGrace, "must be positive");
        Require(MaxSubscriptionsPerConnection >= 1, nameof(MaxSubscriptionsPerConnection), MaxSubscriptionsPerConnection, "must be at least 1");
        Require(TenantLaneCapacity >= 16, nameof(TenantLaneCapacity), TenantLaneCapacity, "must be at least 16");
        Require(BackoffRetryAfterMs >= 1, nameof(BackoffRetryAfterMs), BackoffRetryAfterMs, "must be at least 1");
        Require(!string.IsNullOrWhiteSpace(NodeName) && NodeName.Length <= ProtocolLimits.MaxIdBytes, nameof(NodeName), NodeName, "must be 1..128 characters");
        Retention.Validate();
        Dedup.Validate();
        Presence.Validate();
        Limits.Validate();
        Groups.Validate();
        Tenancy.Validate();
    }
}
