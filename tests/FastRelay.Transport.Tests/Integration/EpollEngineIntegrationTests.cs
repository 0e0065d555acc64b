using FastRelay.Core.Sessions;
using FastRelay.Transport.Connections;
using FastRelay.Transport.Tests.WebSockets;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// The epoll engine itself, whatever engine the rest of the suite runs with: registrations freed on every way a
/// connection ends, edges not lost under many small writes or a FIN that comes with data, and no buffer held idle.
/// Linux only (elsewhere the engine cannot be chosen, which <see cref="TransportOptions.Validate"/> checks).
/// </summary>
public sealed class EpollEngineIntegrationTests : IAsyncLifetime
{
    private static readonly TimeSpan ConditionTimeout = TimeSpan.FromSeconds(10);

    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start(transport: o => o.IoEngine = OperatingSystem.IsLinux() ? IoEngine.Epoll : IoEngine.Sockets);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    private static void AssertEventually(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, ConditionTimeout), $"Not reached within {ConditionTimeout.TotalSeconds:0} s: {what}");

    private static byte[] Framed(string transport, byte[] envelope) =>
        transport == "ws" ? ClientFrame.Build(WebSocketOpcode.Binary, envelope) : RawClient.Frame(envelope);

    private async Task<(IEnvelopeClient Client, Connection Connection)> OpenAsync(string transport, string clientId)
    {
        var client = await _relay.ConnectAsync(transport);
        await Exchange.HelloAsync(client, clientId);
        return (client, _relay.Server.Connections.Single(c => c.Session.ClientId == clientId));
    }

    [Fact]
    public async Task Many_connections_opened_and_closed_leave_no_registered_slot()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        for (int round = 0; round < 5; round++)
        {
            var clients = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
            {
                string transport = (i % 3) switch { 0 => "ws", 1 => "tcp", _ => "unix" };
                var client = await _relay.ConnectAsync(transport);
                if (i % 4 != 0)
                {
                    await Exchange.HelloAsync(client, $"churn-{round}-{i}"); // every fourth leaves before its HELLO
                }

                return client;
            }));

            AssertEventually(
                () => _relay.Server.ConnectionCount == clients.Length && _relay.Server.EpollRegistrations == clients.Length,
                "one registration per accepted connection");
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }

            AssertEventually(() => _relay.Server.ConnectionCount == 0, "every connection torn down");
            Assert.Equal(0, _relay.Server.EpollRegistrations);
        }
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Peer_closing_with_data_in_flight_ends_the_connection_and_frees_its_slot(string transport)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var (client, connection) = await OpenAsync(transport, $"{transport}-inflight");
        int before = _relay.Server.EpollRegistrations;
        var burst = new List<byte>();
        for (int i = 0; i < 200; i++)
        {
            burst.AddRange(Framed(transport, Envelopes.Ping((ulong)(10 + i), new byte[64])));
        }

        // The data and the FIN leave together: one edge may carry both, and no edge follows the FIN.
        await ((SocketClient)client).SendRawAsync(burst.ToArray());
        await client.DisposeAsync();

        await connection.Completion.WaitAsync(ConditionTimeout);
        Assert.Equal(SessionState.Closed, connection.Session.State);
        Assert.Equal(0, connection.ReceiveBufferBytes);
        Assert.Equal(before - 1, _relay.Server.EpollRegistrations);
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    public async Task Burst_of_one_byte_writes_loses_no_edge(string transport)
    {
        var (client, _) = await OpenAsync(transport, $"{transport}-onebyte");
        await using var _ = client;
        const int count = 20;
        var bytes = new List<byte>();
        for (int i = 0; i < count; i++)
        {
            bytes.AddRange(Framed(transport, Envelopes.Ping((ulong)(100 + i), [(byte)i, (byte)(i + 1)])));
        }

        // Each byte is its own segment and its own edge, racing the read loop between its receive and its wait.
        byte[] all = [.. bytes];
        for (int i = 0; i < all.Length; i++)
        {
            await ((SocketClient)client).SendRawAsync(all.AsMemory(i, 1));
        }

        for (int i = 0; i < count; i++)
        {
            Envelopes.AssertPong(await client.ReadEnvelopeAsync(), (ulong)(100 + i), [(byte)i, (byte)(i + 1)]);
        }
    }

    [Theory]
    [InlineData("ws")]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task Idle_connection_holds_no_receive_buffer_and_stays_registered(string transport)
    {
        var (client, connection) = await OpenAsync(transport, $"{transport}-idle-epoll");
        await using var _ = client;
        Envelopes.AssertPong(await SendPingAsync(client, 1), 1, [1]);
        AssertEventually(() => connection.ReceiveBufferBytes == 0, "the receive buffer returned once the input was handled");

        // Still watched: the next input wakes it.
        Envelopes.AssertPong(await SendPingAsync(client, 2), 2, [2]);
        Assert.Equal(OperatingSystem.IsLinux() ? _relay.Server.ConnectionCount : 0, _relay.Server.EpollRegistrations);
    }

    private static async Task<FastRelay.Protocol.Envelope> SendPingAsync(IEnvelopeClient client, byte id)
    {
        await client.SendEnvelopeAsync(Envelopes.Ping(id, [id]));
        return await client.ReadEnvelopeAsync();
    }
}
