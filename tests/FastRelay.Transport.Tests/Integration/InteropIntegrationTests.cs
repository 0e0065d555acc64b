using System.ComponentModel;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using FastRelay.Protocol;

namespace FastRelay.Transport.Tests.Integration;

/// <summary>
/// WebSocket clients not written here talk to the relay: .NET's <see cref="ClientWebSocket"/> and Python's
/// <c>websockets</c> library (Debian package python3-websockets, installed by <c>.ci/run</c>).
/// </summary>
public sealed class InteropIntegrationTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private RelayFixture _relay = null!;

    public Task InitializeAsync()
    {
        _relay = RelayFixture.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _relay.DisposeAsync();

    [Fact]
    public async Task ClientWebSocket_exchanges_hello_sub_pub_and_closes_normally()
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using var rawSubscriber = await RawClient.ConnectTcpAsync(_relay.TcpEndPoint);
        await Exchange.HelloAsync(rawSubscriber, "tcp-watcher");
        ulong watcherEpoch = await Exchange.SubscribeAsync(rawSubscriber, "dotnet.topic");

        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(_relay.WebSocketUri, cts.Token);
        Assert.Equal(WebSocketState.Open, ws.State);
        Assert.Null(ws.SubProtocol);

        await SendAsync(ws, Envelopes.Hello(1, "dotnet-client"), cts.Token);
        Envelopes.AssertWelcome(await ReceiveEnvelopeAsync(ws, cts.Token), 1, "dotnet-client");

        await SendAsync(ws, Envelopes.Sub(2, "dotnet.topic"), cts.Token);
        ulong epoch = Envelopes.AssertSubscribed(await ReceiveEnvelopeAsync(ws, cts.Token), 2, "dotnet.topic");
        Assert.Equal(watcherEpoch, epoch);

        // A payload over 125 bytes makes both directions use the 16-bit length form.
        byte[] payload = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("from ClientWebSocket ", 20)));
        await SendAsync(ws, Envelopes.Pub(3, "dotnet.topic", payload), cts.Token);

        // The publisher is a subscriber too: its ACK (control lane) and its EVENT (event lane) come in either order.
        var first = await ReceiveEnvelopeAsync(ws, cts.Token);
        var second = await ReceiveEnvelopeAsync(ws, cts.Token);
        var (evt, ack) = first.Type == FrameType.Event ? (first, second) : (second, first);
        Envelopes.AssertEvent(evt, "dotnet.topic", epoch, 1, "dotnet-client", payload);
        Envelopes.AssertPublished(ack, 3, epoch, 1);
        Envelopes.AssertEvent(await rawSubscriber.ReadEnvelopeAsync(), "dotnet.topic", epoch, 1, "dotnet-client", payload);

        await SendAsync(ws, Envelopes.Ping(4, [1, 2, 3]), cts.Token);
        Envelopes.AssertPong(await ReceiveEnvelopeAsync(ws, cts.Token), 4, [1, 2, 3]);

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cts.Token);
        Assert.Equal(WebSocketState.Closed, ws.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
    }

    [Fact]
    public async Task ClientWebSocket_sees_the_servers_close_code_and_reason()
    {
        using var cts = new CancellationTokenSource(Timeout);
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(_relay.WebSocketUri, cts.Token);

        await ws.SendAsync("{\"type\":\"hello\"}"u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, cts.Token);

        var result = await ws.ReceiveAsync(new byte[256], cts.Token);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, result.CloseStatus);
        Assert.Equal("text messages are not accepted: send each envelope as one binary message", result.CloseStatusDescription);
        await ws.CloseOutputAsync(WebSocketCloseStatus.InvalidMessageType, null, cts.Token);
        Assert.Equal(WebSocketState.Closed, ws.State);
    }

    [Fact]
    public async Task ClientWebSocket_to_another_path_gets_404()
    {
        using var cts = new CancellationTokenSource(Timeout);
        using var ws = new ClientWebSocket();
        var uri = new UriBuilder(_relay.WebSocketUri) { Path = "/other" }.Uri;

        var ex = await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(uri, cts.Token));

        Assert.Contains("404", ex.Message, StringComparison.Ordinal);
    }

    private static Task SendAsync(ClientWebSocket ws, byte[] envelope, CancellationToken token) =>
        ws.SendAsync(envelope, WebSocketMessageType.Binary, endOfMessage: true, token);

    private static async Task<Envelope> ReceiveEnvelopeAsync(ClientWebSocket ws, CancellationToken token)
    {
        var message = new MemoryStream();
        var buffer = new byte[8192];
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer, token);
            Assert.True(result.MessageType == WebSocketMessageType.Binary, $"Expected a binary message, got {result.MessageType} {result.CloseStatus} {result.CloseStatusDescription}");
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return Envelopes.Decode(message.ToArray());
            }
        }
    }

    [Fact]
    public async Task Python_websockets_exchanges_hello_sub_pub_ping_and_closes_normally()
    {
        string python = await FindPythonWithWebSocketsAsync();
        string script = Path.Combine(Path.GetTempPath(), $"fastrelay-wsit-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(script, PythonClient);
        try
        {
            var (exitCode, stdout, stderr) = await RunAsync(python, [script, _relay.WebSocketUri.ToString()], TimeSpan.FromSeconds(30));
            Assert.True(exitCode == 0, $"{python} {script} exited {exitCode}.\nstdout:\n{stdout}\nstderr:\n{stderr}");

            using var report = JsonDocument.Parse(stdout);
            var frames = report.RootElement.GetProperty("frames").EnumerateArray().ToArray();
            Assert.Equal(6, frames.Length);

            // WELCOME {type, request_id, client_id, tenant, version, node}
            AssertFields(frames[0], ("0", 2), ("1", 1), ("5", "py-client"), ("15", "default"), ("17", 1), ("18", RelayFixture.NodeName));

            // ACK of SUB {type, request_id, topic, epoch, seq}
            AssertFields(frames[1], ("0", 6), ("1", 2), ("2", "py.topic"), ("4", 0));
            ulong epoch = frames[1].GetProperty("3").GetUInt64();
            Assert.NotEqual(0UL, epoch);

            // EVENT (own subscription) and ACK of PUB, in either order (control lane vs event lane).
            if (frames[2].GetProperty("0").GetInt32() == 6)
            {
                (frames[2], frames[3]) = (frames[3], frames[2]);
            }

            AssertFields(frames[2], ("0", 7), ("2", "py.topic"), ("3", epoch), ("4", 1), ("5", "py-client"), ("10", "hex:" + Convert.ToHexString("from python"u8)));
            long nowMicros = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
            Assert.InRange(frames[2].GetProperty("8").GetInt64(), nowMicros - 60_000_000, nowMicros + 60_000_000);
            AssertFields(frames[3], ("0", 6), ("1", 3), ("3", epoch), ("4", 1));

            // PONG for the envelope PING, then an ERROR for an unsubscribe of an unknown topic (connection stays up).
            AssertFields(frames[4], ("0", 15), ("1", 4), ("10", "hex:00FF7F"));
            AssertFields(frames[5], ("0", 8), ("1", 5), ("12", 404), ("13", "not subscribed to 'nope'"));

            // The library's own ping was answered by a pong, and the close handshake completed with 1000.
            Assert.True(report.RootElement.GetProperty("ws_ping_answered").GetBoolean());
            Assert.Equal(1000, report.RootElement.GetProperty("close_code").GetInt32());
        }
        finally
        {
            File.Delete(script);
        }
    }

    private static void AssertFields(JsonElement frame, params (string Key, object Value)[] expected)
    {
        var actual = frame.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString());
        foreach (var (key, value) in expected)
        {
            Assert.True(actual.ContainsKey(key), $"Field {key} missing from {frame}");
            Assert.True(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) == actual[key], $"Field {key} of {frame}: expected {value}, got {actual[key]}");
        }
    }

    /// <summary>
    /// The first of <c>python3</c> on PATH and <c>/usr/bin/python3</c> that can import <c>websockets</c>: the Debian
    /// package installs into the system interpreter, which a pyenv or venv <c>python3</c> on PATH does not see.
    /// Fails (never skips) when there is none.
    /// </summary>
    private static async Task<string> FindPythonWithWebSocketsAsync()
    {
        var tried = new List<string>();
        foreach (string candidate in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                var (exitCode, stdout, stderr) = await RunAsync(candidate, ["-c", "import websockets; print(websockets.__version__)"], TimeSpan.FromSeconds(20));
                if (exitCode == 0)
                {
                    return candidate;
                }

                tried.Add($"{candidate}: exit {exitCode}: {stderr.Trim().Split('\n').LastOrDefault()}");
            }
            catch (Win32Exception ex)
            {
                tried.Add($"{candidate}: {ex.Message}");
            }
        }

        Assert.Fail(
            "This test needs python3 with the 'websockets' module (Debian package python3-websockets; .ci/run installs it: " +
            "apt-get install -y python3-websockets). Tried:\n  " + string.Join("\n  ", tried));
        return null!;
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string fileName, string[] arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"{fileName} {string.Join(' ', arguments)} did not finish within {timeout.TotalSeconds} s.\nstdout:\n{await stdout}\nstderr:\n{await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// The Python client. MessagePack is encoded and decoded by hand (only the forms the envelopes use), so the
    /// script needs nothing but the websockets library. It prints one JSON report; the test asserts on it.
    /// </summary>
    private const string PythonClient = """
        import asyncio, json, struct, sys

        import websockets

        HELLO, WELCOME, SUB, UNSUB, PUB, ACK, EVENT, ERROR, PING, PONG = 1, 2, 3, 4, 5, 6, 7, 8, 14, 15
        TIMEOUT = 5


        def pack_uint(v):
            if v < 0x80:
                return bytes([v])
            if v < 0x100:
                return b"\xcc" + struct.pack(">B", v)
            if v < 0x10000:
                return b"\xcd" + struct.pack(">H", v)
            if v < 0x100000000:
                return b"\xce" + struct.pack(">I", v)
            return b"\xcf" + struct.pack(">Q", v)


        def pack_str(s):
            b = s.encode("utf-8")
            n = len(b)
            if n < 32:
                return bytes([0xA0 | n]) + b
            if n < 0x100:
                return b"\xd9" + struct.pack(">B", n) + b
            if n < 0x10000:
                return b"\xda" + struct.pack(">H", n) + b
            return b"\xdb" + struct.pack(">I", n) + b


        def pack_bin(b):
            n = len(b)
            if n < 0x100:
                return b"\xc4" + struct.pack(">B", n) + b
            if n < 0x10000:
                return b"\xc5" + struct.pack(">H", n) + b
            return b"\xc6" + struct.pack(">I", n) + b


        def pack(envelope):
            assert len(envelope) < 16
            out = bytes([0x80 | len(envelope)])
            for key in sorted(envelope):
                value = envelope[key]
                out += pack_uint(key)
                if isinstance(value, int):
                    out += pack_uint(value)
                elif isinstance(value, str):
                    out += pack_str(value)
                else:
                    out += pack_bin(bytes(value))
            return out


        class Unpacker:
            def __init__(self, data):
                self.data, self.pos = data, 0

            def take(self, n):
                chunk = self.data[self.pos:self.pos + n]
                if len(chunk) != n:
                    raise ValueError("truncated MessagePack")
                self.pos += n
                return chunk

            def unpack(self, fmt):
                return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

            def value(self):
                b = self.take(1)[0]
                if b < 0x80:
                    return b
                if b >= 0xE0:
                    return b - 0x100
                if 0x80 <= b <= 0x8F:
                    return self.map(b & 0x0F)
                if 0xA0 <= b <= 0xBF:
                    return self.take(b & 0x1F).decode("utf-8")
                simple = {0xC0: None, 0xC2: False, 0xC3: True}
                if b in simple:
                    return simple[b]
                fixed = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
                if b in fixed:
                    return self.unpack(fixed[b])
                strings = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}
                if b in strings:
                    return self.take(self.unpack(strings[b])).decode("utf-8")
                binaries = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
                if b in binaries:
                    return "hex:" + self.take(self.unpack(binaries[b])).hex().upper()
                if b == 0xDE:
                    return self.map(self.unpack(">H"))
                raise ValueError("unexpected MessagePack byte 0x%02X" % b)

            def map(self, n):
                return {str(self.value()): self.value() for _ in range(n)}


        def unpack(data):
            u = Unpacker(data)
            envelope = u.value()
            if u.pos != len(data) or not isinstance(envelope, dict):
                raise ValueError("not exactly one MessagePack map: %s" % data.hex())
            return envelope


        async def main(uri):
            frames = []
            async with websockets.connect(uri, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=1 << 20) as ws:
                async def send(envelope):
                    await ws.send(pack(envelope))

                async def recv():
                    data = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    if not isinstance(data, bytes):
                        raise AssertionError("expected a binary message, got %r" % (data,))
                    frames.append(unpack(data))

                await send({0: HELLO, 1: 1, 5: "py-client"})
                await recv()
                await send({0: SUB, 1: 2, 2: "py.topic"})
                await recv()
                await send({0: PUB, 1: 3, 2: "py.topic", 10: b"from python"})
                await recv()
                await recv()
                await send({0: PING, 1: 4, 10: b"\x00\xff\x7f"})
                await recv()
                await send({0: UNSUB, 1: 5, 2: "nope"})
                await recv()
                pong = await ws.ping(b"py-ping")
                await asyncio.wait_for(pong, TIMEOUT)
            print(json.dumps({
                "websockets": websockets.__version__,
                "frames": frames,
                "ws_ping_answered": True,
                "close_code": getattr(ws, "close_code", None),
            }))


        asyncio.run(main(sys.argv[1]))
        """;
}
