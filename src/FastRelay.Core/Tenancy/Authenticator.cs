using System.Text;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Core.Tenancy;

/// <summary>Outcome of a HELLO: the session's tenant, client id and permissions, or why it was refused.</summary>
public readonly record struct AuthResult(
    bool Succeeded,
    string? Error,
    TenantContext? Tenant,
    string? ClientId,
    TopicPatternSet? Publish,
    TopicPatternSet? Subscribe)
{
    public static AuthResult Fail(string error) => new(false, error, null, null, null, null);
}

/// <summary>
/// Turns a HELLO's token and client id into a session identity. With no tenants configured everyone is in the
/// <c>default</c> tenant with full rights (the embedded default); otherwise an HS256 token is required.
/// </summary>
public sealed class Authenticator
{
    private readonly TokenValidator? _validator;
    private readonly Dictionary<string, TenantContext> _tenants = new(StringComparer.Ordinal);
    private long _anonymous;

    public Authenticator(TenancyOptions options, TimeProvider clock)
        : this(options, new FlowControl.LimitOptions(), int.MaxValue, clock)
    {
    }

    public Authenticator(TenancyOptions options, FlowControl.LimitOptions limits, int maxMessageBytes, TimeProvider clock)
    {
        if (options.RequiresToken)
        {
            _validator = TokenValidator.FromOptions(options, clock);
            for (int i = 0; i < options.Tenants.Count; i++)
            {
                var t = options.Tenants[i];
                _tenants[t.Name] = new TenantContext(
                    i + 1,
                    t.Name,
                    t.PublishRate ?? limits.PublishRatePerTenant,
                    t.PublishBurst ?? limits.PublishBurstPerTenant,
                    t.MaxConnections ?? limits.MaxConnectionsPerTenant,
                    Math.Min(t.MaxMessageBytes ?? maxMessageBytes, maxMessageBytes));
            }
        }
        else
        {
            Default = new TenantContext(0, TenantContext.DefaultName, limits.PublishRatePerTenant, limits.PublishBurstPerTenant, limits.MaxConnectionsPerTenant, maxMessageBytes);
            _tenants[Default.Name] = Default;
        }
    }

    /// <summary>The tenant of token-less mode; null when tenants are configured.</summary>
    public TenantContext? Default { get; }

    public IReadOnlyCollection<TenantContext> Tenants => _tenants.Values;

    public TenantContext? FindTenant(string name) => _tenants.GetValueOrDefault(name);

    /// <summary>Several tenants share the shards: cap each tenant's share of every shard inbox.</summary>
    internal bool EnableFairness(int shards, int inboxCapacity)
    {
        if (_tenants.Count < 2)
        {
            return false; // one tenant cannot be unfair to another: shards take publishes in arrival order
        }

        foreach (var tenant in _tenants.Values)
        {
            tenant.EnableShardQuota(shards, Math.Max(16, inboxCapacity / 2));
        }

        return true;
    }

    public AuthResult Authenticate(ReadOnlySpan<byte> token, ReadOnlySpan<byte> requestedClientId)
    {
        if (_validator is null)
        {
            string clientId = requestedClientId.IsEmpty
                ? $"anon-{Interlocked.Increment(ref _anonymous)}"
                : Encoding.UTF8.GetString(requestedClientId);
            return new AuthResult(true, null, Default, clientId, null, null);
        }

        if (token.IsEmpty)
        {
            return AuthResult.Fail("a token is required: send HELLO with field 14 (token)");
        }

        var result = _validator.Validate(token);
        if (!result.IsValid)
        {
            return AuthResult.Fail($"token refused: {result.Message}");
        }

        var claims = result.Claims!;
        if (!_tenants.TryGetValue(claims.Tenant, out var tenant))
        {
            return AuthResult.Fail($"token refused: unknown tenant '{claims.Tenant}'");
        }

        if (!requestedClientId.IsEmpty && !requestedClientId.SequenceEqual(Encoding.UTF8.GetBytes(claims.ClientId)))
        {
            return AuthResult.Fail("client_id in HELLO does not match the token's subject");
        }

        if (claims.ClientId.Length == 0 || Encoding.UTF8.GetByteCount(claims.ClientId) > ProtocolLimits.MaxIdBytes)
        {
            return AuthResult.Fail("token refused: subject (client id) must be 1..128 bytes");
        }

        return new AuthResult(true, null, tenant, claims.ClientId, result.Publish, result.Subscribe);
    }
}
