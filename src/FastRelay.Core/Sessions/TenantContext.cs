using System.Text;

namespace FastRelay.Core.Sessions;

/// <summary>A tenant's namespace as sessions see it: a small integer id used in topic keys, and its name.</summary>
public sealed class TenantContext
{
    public const string DefaultName = "default";

    public TenantContext(int id, string name)
    {
        Id = id;
        Name = name;
        NameUtf8 = Encoding.UTF8.GetBytes(name);
    }

    public int Id { get; }

    public string Name { get; }

    public byte[] NameUtf8 { get; }

    public override string ToString() => Name;
}
