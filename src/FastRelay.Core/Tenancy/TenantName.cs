namespace FastRelay.Core.Tenancy;

/// <summary>Rules for tenant names: 1..64 characters of [a-z0-9_-].</summary>
public static class TenantName
{
    /// <summary>The one tenant the server runs as when no tenants are configured.</summary>
    public const string Default = "default";

    public const int MaxLength = 64;

    public static bool IsValid(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || name.Length > MaxLength)
        {
            return false;
        }

        foreach (char c in name)
        {
            if (!IsNameChar(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Same rule on UTF-8 bytes (a tenant name is ASCII, so one byte per character).</summary>
    public static bool IsValid(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty || name.Length > MaxLength)
        {
            return false;
        }

        foreach (byte b in name)
        {
            if (!IsNameChar((char)b))
            {
                return false;
            }
        }

        return true;
    }

    internal const string Rule = "1 to 64 characters of a-z, 0-9, '_' and '-'";

    private static bool IsNameChar(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-';
}
