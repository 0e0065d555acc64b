using System.Text;
using FastRelay.Core.FlowControl;

namespace FastRelay.Core.Sessions;

/// <summary>A tenant's namespace as sessions see it: a small integer id used in topic keys, and its name.</summary>
public sealed class TenantContext
{
    public const string DefaultName = "default";

    private int _connections;

    public TenantContext(int id, string name, double publishRate = 0, double publishBurst = 0, int maxConnections = 0, int maxMessageBytes = int.MaxValue)
    {
        Id = id;
        Name = name;
        NameUtf8 = Encoding.UTF8.GetBytes(name);
        PublishBucket = new SharedTokenBucket(publishRate, LimitOptions.BurstOr(publishBurst, publishRate));
        MaxConnections = maxConnections;
        MaxMessageBytes = maxMessageBytes;
    }

    /// <summary>The tenant's shared publish rate.</summary>
    public SharedTokenBucket PublishBucket { get; }

    /// <summary>Open sessions allowed (0 = unlimited).</summary>
    public int MaxConnections { get; }

    /// <summary>Largest envelope the tenant's clients may send.</summary>
    public int MaxMessageBytes { get; }

    /// <summary>Open sessions now.</summary>
    public int Connections => Volatile.Read(ref _connections);

    private int[]? _inFlight;
    private int _shardQuota;

    /// <summary>
    /// With several tenants, one tenant may have at most <paramref name="quota"/> publishes waiting in one shard's
    /// inbox, so a flood cannot fill an inbox that other tenants share.
    /// </summary>
    internal void EnableShardQuota(int shards, int quota)
    {
        _inFlight = new int[shards * 16]; // one cache line per shard: tenants' connections on different shards do not contend
        _shardQuota = quota;
    }

    /// <summary>Read loop: reserves a place in <paramref name="shard"/>'s inbox for this tenant.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool TryEnterShard(int shard)
    {
        if (_inFlight is null)
        {
            return true;
        }

        if (Interlocked.Increment(ref _inFlight[shard * 16]) <= _shardQuota)
        {
            return true;
        }

        Interlocked.Decrement(ref _inFlight[shard * 16]);
        return false;
    }

    /// <summary>Shard thread: the publish left the inbox.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void LeaveShard(int shard)
    {
        if (_inFlight is not null)
        {
            Interlocked.Decrement(ref _inFlight[shard * 16]);
        }
    }

    internal bool TryAddConnection()
    {
        if (Interlocked.Increment(ref _connections) <= MaxConnections || MaxConnections == 0)
        {
            return true;
        }

        Interlocked.Decrement(ref _connections);
        return false;
    }

    internal void RemoveConnection() => Interlocked.Decrement(ref _connections);

    public int Id { get; }

    public string Name { get; }

    public byte[] NameUtf8 { get; }

    public override string ToString() => Name;
}
