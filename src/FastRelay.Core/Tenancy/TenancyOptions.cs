using System.Text;

namespace FastRelay.Core.Tenancy;

/// <summary>Tenancy configuration: no tenants means one <see cref="TenantName.Default"/> tenant and no token.</summary>
public sealed class TenancyOptions
{
    public const string SectionName = "Tenancy";
    public const int DefaultTokenLeewaySeconds = 30;
    public const int MaxTokenLeewaySeconds = 600;

    public List<TenantOptions> Tenants { get; set; } = [];

    /// <summary>Clock skew tolerated on 'exp', 'nbf' and 'iat', in seconds (0..600).</summary>
    public int TokenLeewaySeconds { get; set; } = DefaultTokenLeewaySeconds;

    /// <summary>True when tenants are configured, so that HELLO must carry a token.</summary>
    public bool RequiresToken => Tenants.Count > 0;

    /// <summary>Every problem with this configuration, or none.</summary>
    public IReadOnlyList<string> GetErrors()
    {
        var errors = new List<string>();
        if (TokenLeewaySeconds is < 0 or > MaxTokenLeewaySeconds)
        {
            errors.Add($"TokenLeewaySeconds is {TokenLeewaySeconds}; it must be between 0 and {MaxTokenLeewaySeconds}");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var secretOwners = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < Tenants.Count; i++)
        {
            var tenant = Tenants[i];
            if (tenant is null)
            {
                errors.Add($"Tenants[{i}] is empty");
                continue;
            }

            string name = tenant.Name ?? "";
            string label = $"tenant '{name}' (Tenants[{i}])";
            if (!TenantName.IsValid(name))
            {
                errors.Add($"{label}: the name must be {TenantName.Rule}");
            }
            else if (!names.Add(name))
            {
                errors.Add($"{label}: the name is used by an earlier tenant");
            }

            if (tenant.PublishRate < 0 || tenant.PublishBurst < 0 || tenant.MaxConnections < 0)
            {
                errors.Add($"{label}: PublishRate, PublishBurst and MaxConnections must be ≥ 0 (0 = unlimited)");
            }

            if (tenant.MaxMessageBytes is < 256)
            {
                errors.Add($"{label}: MaxMessageBytes must be at least 256");
            }

            var secrets = tenant.Secrets ?? [];
            if (secrets.Count == 0)
            {
                errors.Add($"{label}: at least one secret is required");
            }

            for (int s = 0; s < secrets.Count; s++)
            {
                string? secret = secrets[s];
                int bytes = secret is null ? 0 : Encoding.UTF8.GetByteCount(secret);
                if (bytes < TenantOptions.MinSecretBytes)
                {
                    errors.Add($"{label}: Secrets[{s}] is {bytes} bytes; a secret must be at least {TenantOptions.MinSecretBytes} UTF-8 bytes");
                    continue;
                }

                if (secretOwners.TryGetValue(secret!, out string? owner) && owner != name)
                {
                    // The tenant claim is inside the signed payload: a shared secret lets one tenant mint the other's tokens.
                    errors.Add($"{label}: Secrets[{s}] is also a secret of tenant '{owner}'; each tenant needs its own secrets");
                }
                else
                {
                    secretOwners[secret!] = name;
                }
            }
        }

        return errors;
    }

    /// <summary>Throws <see cref="TenancyConfigurationException"/> listing every problem, if there is any.</summary>
    public void Validate()
    {
        var errors = GetErrors();
        if (errors.Count > 0)
        {
            throw new TenancyConfigurationException(errors);
        }
    }

    /// <summary>Tenant name → its secrets as UTF-8 bytes. Call after <see cref="Validate"/>.</summary>
    internal Dictionary<string, byte[][]> BuildSecretTable()
    {
        var table = new Dictionary<string, byte[][]>(StringComparer.Ordinal);
        foreach (var tenant in Tenants)
        {
            table[tenant.Name] = tenant.Secrets.Select(Encoding.UTF8.GetBytes).ToArray();
        }

        return table;
    }
}
