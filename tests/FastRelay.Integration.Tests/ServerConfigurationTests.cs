using FastRelay.Server;

namespace FastRelay.Integration.Tests;

public sealed class ServerConfigurationTests
{
    [Fact]
    public void Embedded_defaults_listen_on_the_documented_addresses()
    {
        var configuration = ServerConfiguration.Build([]);
        var transport = ServerConfiguration.ReadTransport(configuration);
        var relay = ServerConfiguration.ReadRelay(configuration);
        Assert.Equal("127.0.0.1:7700", transport.WebSocket);
        Assert.Equal("/ws", transport.WebSocketPath);
        Assert.Equal("127.0.0.1:7701", transport.Tcp);
        Assert.EndsWith("fastrelay.sock", transport.Unix);
        Assert.Equal(0, relay.Shards);
        Assert.Equal(Environment.ProcessorCount, relay.EffectiveShards);
        Assert.False(relay.Tenancy.RequiresToken);
        relay.Validate();
        transport.Validate();
    }

    [Fact]
    public void Short_flags_and_section_keys_override_defaults_and_off_disables_a_listener()
    {
        var configuration = ServerConfiguration.Build(["--tcp", "127.0.0.1:9001", "--unix", "off", "--shards", "3", "--Relay:MaxMessageBytes=4096"]);
        var transport = ServerConfiguration.ReadTransport(configuration);
        var relay = ServerConfiguration.ReadRelay(configuration);
        Assert.Equal("127.0.0.1:9001", transport.Tcp);
        Assert.Null(transport.Unix);
        Assert.Equal(3, relay.Shards);
        Assert.Equal(4096, relay.MaxMessageBytes);
    }

    [Fact]
    public void A_config_file_adds_tenants_and_flags_still_win()
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory().FullName, "relay.json");
        File.WriteAllText(file, """
            { "Tenancy": { "Tenants": [ { "Name": "acme", "Secrets": ["0123456789abcdef0123456789abcdef-acme"] } ] },
              "Transport": { "Tcp": "127.0.0.1:9100" } }
            """);
        var configuration = ServerConfiguration.Build(["--config", file, "--tcp", "127.0.0.1:9200"]);
        var relay = ServerConfiguration.ReadRelay(configuration);
        Assert.True(relay.Tenancy.RequiresToken);
        Assert.Equal("acme", Assert.Single(relay.Tenancy.Tenants).Name);
        Assert.Equal("127.0.0.1:9200", ServerConfiguration.ReadTransport(configuration).Tcp);
    }

    [Fact]
    public void Invalid_settings_are_refused_with_the_setting_named()
    {
        var relay = ServerConfiguration.ReadRelay(ServerConfiguration.Build(["--Relay:ShardInboxCapacity=1000"]));
        var ex = Assert.Throws<ArgumentException>(relay.Validate);
        Assert.Contains("ShardInboxCapacity", ex.Message);

        var transport = ServerConfiguration.ReadTransport(ServerConfiguration.Build(["--tcp", "nonsense"]));
        var bad = Assert.Throws<ArgumentException>(transport.Validate);
        Assert.Contains("Tcp", bad.Message);
    }
}
