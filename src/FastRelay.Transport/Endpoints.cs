using System.Net;

namespace FastRelay.Transport;

/// <summary>Parses listener addresses given in configuration.</summary>
public static class Endpoints
{
    /// <summary>"host:port", "[::1]:port" or ":port" (all interfaces).</summary>
    public static IPEndPoint ParseIp(string value, string settingName)
    {
        int colon = value.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(value.AsSpan(colon + 1), out int port) || port is < 0 or > 65535)
        {
            throw new ArgumentException($"Listener '{settingName}' = '{value}' is not host:port.");
        }

        string host = value[..colon].Trim('[', ']');
        if (host.Length == 0)
        {
            return new IPEndPoint(IPAddress.Any, port);
        }

        if (host == "localhost")
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        if (!IPAddress.TryParse(host, out var address))
        {
            throw new ArgumentException($"Listener '{settingName}' = '{value}': '{host}' is not an IP address.");
        }

        return new IPEndPoint(address, port);
    }
}
