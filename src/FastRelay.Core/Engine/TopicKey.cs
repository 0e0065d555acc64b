using System.IO.Hashing;
using System.Text;

namespace FastRelay.Core.Engine;

/// <summary>Stable 64-bit hash of (tenant, topic): picks the owning shard and keys the shard's topic table.</summary>
public static class TopicHash
{
    public static ulong Compute(int tenant, ReadOnlySpan<byte> topicUtf8) => XxHash3.HashToUInt64(topicUtf8, tenant);
}

/// <summary>A topic name in a tenant's namespace, as looked up without allocation (span + precomputed hash).</summary>
public readonly ref struct TopicRef
{
    public readonly int Tenant;
    public readonly ReadOnlySpan<byte> Name;
    public readonly ulong Hash;

    public TopicRef(int tenant, ReadOnlySpan<byte> name, ulong hash)
    {
        Tenant = tenant;
        Name = name;
        Hash = hash;
    }
}

/// <summary>A topic's identity: tenant id and UTF-8 name. Created once per topic, on the cold path.</summary>
public sealed class TopicKey : IEquatable<TopicKey>
{
    public TopicKey(int tenant, ReadOnlySpan<byte> name, ulong hash)
    {
        Tenant = tenant;
        Utf8 = name.ToArray();
        Name = Encoding.UTF8.GetString(name);
        Hash = hash;
    }

    public static TopicKey Create(int tenant, ReadOnlySpan<byte> name) => new(tenant, name, TopicHash.Compute(tenant, name));

    public int Tenant { get; }

    public byte[] Utf8 { get; }

    public string Name { get; }

    public ulong Hash { get; }

    public bool Equals(TopicKey? other) =>
        other is not null && other.Tenant == Tenant && other.Hash == Hash && other.Utf8.AsSpan().SequenceEqual(Utf8);

    public override bool Equals(object? obj) => Equals(obj as TopicKey);

    public override int GetHashCode() => (int)Hash;

    public override string ToString() => Name;
}

/// <summary>Equality for <see cref="TopicKey"/> with a span-based alternate lookup (no allocation per publish).</summary>
public sealed class TopicKeyComparer : IEqualityComparer<TopicKey>, IAlternateEqualityComparer<TopicRef, TopicKey>
{
    public static TopicKeyComparer Instance { get; } = new();

    public bool Equals(TopicKey? x, TopicKey? y) => ReferenceEquals(x, y) || (x is not null && x.Equals(y));

    public int GetHashCode(TopicKey obj) => (int)obj.Hash;

    public bool Equals(TopicRef alternate, TopicKey other) =>
        alternate.Hash == other.Hash && alternate.Tenant == other.Tenant && alternate.Name.SequenceEqual(other.Utf8);

    public int GetHashCode(TopicRef alternate) => (int)alternate.Hash;

    public TopicKey Create(TopicRef alternate) => new(alternate.Tenant, alternate.Name, alternate.Hash);
}
