namespace FastRelay.Core.FlowControl;

/// <summary>Rate and count limits. 0 means unlimited. Tenants may override the tenant-level ones.</summary>
public sealed class LimitOptions
{
    /// <summary>PUBs per second one connection may send; over it the publisher gets BACKOFF.</summary>
    public double PublishRatePerConnection { get; set; }

    /// <summary>Burst allowance of <see cref="PublishRatePerConnection"/> (default: one second's worth).</summary>
    public double PublishBurstPerConnection { get; set; }

    /// <summary>PUBs per second all connections of one tenant may send together.</summary>
    public double PublishRatePerTenant { get; set; }

    /// <summary>Burst allowance of <see cref="PublishRatePerTenant"/> (default: one second's worth).</summary>
    public double PublishBurstPerTenant { get; set; }

    /// <summary>Open sessions one tenant may hold; HELLO beyond it gets ERROR 429.</summary>
    public int MaxConnectionsPerTenant { get; set; }

    public void Validate()
    {
        if (PublishRatePerConnection < 0 || PublishBurstPerConnection < 0 || PublishRatePerTenant < 0 || PublishBurstPerTenant < 0 || MaxConnectionsPerTenant < 0)
        {
            throw new ArgumentException("Relay:Limits values must be ≥ 0 (0 = unlimited).");
        }
    }

    internal static double BurstOr(double burst, double rate) => burst > 0 ? burst : Math.Max(1, rate);
}
