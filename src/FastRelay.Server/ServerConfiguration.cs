using FastRelay.Core;
using FastRelay.Core.Tenancy;
using FastRelay.Transport;
using Microsoft.Extensions.Configuration;

namespace FastRelay.Server;

/// <summary>
/// Reads the relay's settings: appsettings.json beside the binary, then FASTRELAY_ environment variables
/// (FASTRELAY_Transport__Tcp=...), then command-line flags, later sources winning.
/// </summary>
internal static class ServerConfiguration
{
    /// <summary>Short flags for the common settings; any key also works as --Section:Key=value.</summary>
    public static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.OrdinalIgnoreCase)
    {
        ["--ws"] = "Transport:WebSocket",
        ["--ws-path"] = "Transport:WebSocketPath",
        ["--tcp"] = "Transport:Tcp",
        ["--unix"] = "Transport:Unix",
        ["--shards"] = "Relay:Shards",
        ["--node"] = "Relay:NodeName",
        ["--max-message-bytes"] = "Relay:MaxMessageBytes",
        ["--config"] = "ConfigFile",
    };

    public static IConfigurationRoot Build(string[] args)
    {
        // A first pass finds --config so an explicit file can sit between the defaults and the overrides.
        var bootstrap = new ConfigurationBuilder().AddCommandLine(args, SwitchMappings).Build();
        var builder = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true);
        if (bootstrap["ConfigFile"] is { Length: > 0 } file)
        {
            builder.AddJsonFile(Path.GetFullPath(file), optional: false);
        }

        return builder
            .AddEnvironmentVariables("FASTRELAY_")
            .AddCommandLine(args, SwitchMappings)
            .Build();
    }

    public static RelayOptions ReadRelay(IConfiguration configuration)
    {
        var options = new RelayOptions();
        configuration.GetSection("Relay").Bind(options);
        options.Tenancy = ReadTenancy(configuration);
        return options;
    }

    public static TenancyOptions ReadTenancy(IConfiguration configuration)
    {
        var tenancy = new TenancyOptions();
        configuration.GetSection(TenancyOptions.SectionName).Bind(tenancy);
        return tenancy;
    }

    public static TransportOptions ReadTransport(IConfiguration configuration)
    {
        var options = new TransportOptions();
        configuration.GetSection("Transport").Bind(options);
        // "off" or "" disables a listener.
        options.WebSocket = Disabled(options.WebSocket);
        options.Tcp = Disabled(options.Tcp);
        options.Unix = Disabled(options.Unix);
        return options;
    }

    private static string? Disabled(string? value) =>
        string.IsNullOrWhiteSpace(value) || value.Equals("off", StringComparison.OrdinalIgnoreCase) ? null : value;
}
