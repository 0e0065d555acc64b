using System.Buffers;
using System.Text;
using FastRelay.Transport.WebSockets;

namespace FastRelay.Transport.Tests.WebSockets;

public class WebSocketHandshakeTests
{
    private const string SampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
    private const int MaxRequestBytes = 8 * 1024;

    private static string Request(string requestLine = "GET /chat?room=1&x=y HTTP/1.1", params string[] headers)
    {
        string[] all = headers.Length > 0 ? headers : DefaultHeaders;
        return requestLine + "\r\n" + string.Concat(all.Select(h => h + "\r\n")) + "\r\n";
    }

    private static readonly string[] DefaultHeaders =
    [
        "Host: relay.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: " + SampleKey,
        "Origin: https://app.example.com",
        "Sec-WebSocket-Protocol: fastrelay.v1, fastrelay.v0",
        "Sec-WebSocket-Version: 13",
    ];

    private static string[] HeadersWithout(string name) =>
        [.. DefaultHeaders.Where(h => !h.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))];

    private static string[] HeadersWith(string name, string value) => [.. HeadersWithout(name), $"{name}: {value}"];

    private static HandshakeStatus Parse(string request, out WebSocketUpgradeRequest upgrade, out HandshakeFailure failure, int maxRequestBytes = MaxRequestBytes)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(request));
        return WebSocketHandshake.TryParse(ref buffer, maxRequestBytes, out upgrade, out failure);
    }

    private static void AssertRejected(string request, int statusCode, int maxRequestBytes = MaxRequestBytes)
    {
        HandshakeStatus status = Parse(request, out _, out HandshakeFailure failure, maxRequestBytes);

        Assert.Equal(HandshakeStatus.Rejected, status);
        Assert.Equal(statusCode, failure.StatusCode);
        Assert.False(string.IsNullOrEmpty(failure.Reason));
    }

    private static string Reject(HandshakeFailure failure)
    {
        var output = new ArrayBufferWriter<byte>();
        WebSocketHandshake.WriteReject(output, failure);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    [Fact]
    public void Valid_upgrade_request_is_accepted_with_its_parts()
    {
        HandshakeStatus status = Parse(Request(), out WebSocketUpgradeRequest upgrade, out _);

        Assert.Equal(HandshakeStatus.Accepted, status);
        Assert.Equal("/chat", upgrade.Path);
        Assert.Equal("room=1&x=y", upgrade.QueryString);
        Assert.Equal("relay.example.com", upgrade.Host);
        Assert.Equal(SampleKey, upgrade.Key);
        Assert.Equal("https://app.example.com", upgrade.Origin);
        Assert.Equal("fastrelay.v1, fastrelay.v0", upgrade.SubProtocols);
    }

    [Fact]
    public void Request_without_query_or_optional_headers_has_empty_query_and_null_options()
    {
        string request = Request("GET / HTTP/1.1", [.. HeadersWithout("Origin").Where(h => !h.StartsWith("Sec-WebSocket-Protocol", StringComparison.Ordinal))]);

        Assert.Equal(HandshakeStatus.Accepted, Parse(request, out WebSocketUpgradeRequest upgrade, out _));
        Assert.Equal("/", upgrade.Path);
        Assert.Equal(string.Empty, upgrade.QueryString);
        Assert.Null(upgrade.Origin);
        Assert.Null(upgrade.SubProtocols);
    }

    [Fact]
    public void Header_names_and_upgrade_tokens_are_case_insensitive()
    {
        string request = Request("GET /ws HTTP/1.1",
            "host: h", "UPGRADE: WebSocket", "connection: keep-alive, UPGRADE", "sec-websocket-key: " + SampleKey, "SEC-WEBSOCKET-VERSION:13");

        Assert.Equal(HandshakeStatus.Accepted, Parse(request, out _, out _));
    }

    [Fact]
    public void Repeated_subprotocol_headers_are_joined()
    {
        string request = Request("GET / HTTP/1.1", [.. HeadersWithout("Sec-WebSocket-Protocol"), "Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b"]);

        Assert.Equal(HandshakeStatus.Accepted, Parse(request, out WebSocketUpgradeRequest upgrade, out _));
        Assert.Equal("a, b", upgrade.SubProtocols);
    }

    [Fact]
    public void Accept_uses_the_rfc_6455_sample_key()
    {
        var output = new ArrayBufferWriter<byte>();

        WebSocketHandshake.WriteAccept(output, SampleKey);

        Assert.Equal(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            Encoding.ASCII.GetString(output.WrittenSpan));
    }

    [Fact]
    public void Accept_with_a_subprotocol_names_it()
    {
        var output = new ArrayBufferWriter<byte>();

        WebSocketHandshake.WriteAccept(output, SampleKey, "fastrelay.v1");

        Assert.EndsWith(
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: fastrelay.v1\r\n\r\n",
            Encoding.ASCII.GetString(output.WrittenSpan), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bad protocol")]
    [InlineData("x\r\nSet-Cookie: a=b")]
    [InlineData("")]
    public void Accept_with_a_subprotocol_that_is_not_a_token_throws(string subProtocol)
    {
        Assert.Throws<ArgumentException>(() => WebSocketHandshake.WriteAccept(new ArrayBufferWriter<byte>(), SampleKey, subProtocol));
    }

    [Fact]
    public void Every_strict_prefix_of_a_request_needs_more_data_and_leaves_the_buffer_alone()
    {
        byte[] bytes = Encoding.ASCII.GetBytes(Request());

        for (int length = 0; length < bytes.Length; length++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, length);

            HandshakeStatus status = WebSocketHandshake.TryParse(ref buffer, MaxRequestBytes, out _, out _);

            Assert.Equal(HandshakeStatus.NeedMoreData, status);
            Assert.Equal(length, buffer.Length);
        }
    }

    [Fact]
    public void Request_split_across_segments_at_every_offset_is_accepted()
    {
        byte[] bytes = Encoding.ASCII.GetBytes(Request());

        for (int cut = 1; cut < bytes.Length; cut++)
        {
            ReadOnlySequence<byte> buffer = Sequences.Split(bytes, cut);

            Assert.Equal(HandshakeStatus.Accepted, WebSocketHandshake.TryParse(ref buffer, MaxRequestBytes, out WebSocketUpgradeRequest upgrade, out _));
            Assert.Equal(SampleKey, upgrade.Key);
            Assert.Equal(0, buffer.Length);
        }
    }

    [Fact]
    public void Pipelined_bytes_after_the_request_stay_in_the_buffer()
    {
        byte[] frame = ClientFrame.Build(WebSocketOpcode.Binary, "early"u8);
        byte[] bytes = [.. Encoding.ASCII.GetBytes(Request()), .. frame];
        var buffer = new ReadOnlySequence<byte>(bytes);

        Assert.Equal(HandshakeStatus.Accepted, WebSocketHandshake.TryParse(ref buffer, MaxRequestBytes, out _, out _));
        Assert.Equal(frame, buffer.ToArray());
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("get")]
    public void Non_get_method_is_rejected_with_405(string method)
    {
        AssertRejected(Request($"{method} /chat HTTP/1.1"), 405);
    }

    [Fact]
    public void Reject_405_names_the_allowed_method()
    {
        Parse(Request("POST / HTTP/1.1"), out _, out HandshakeFailure failure);

        Assert.Contains("\r\nAllow: GET\r\n", Reject(failure), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET / HTTP/1.0")]
    [InlineData("GET / HTTP/2.0")]
    [InlineData("GET /")]
    [InlineData("GET")]
    [InlineData("GET  / HTTP/1.1")]
    [InlineData("GET / HTTP/1.1 ")]
    [InlineData("GET / extra HTTP/1.1")]
    [InlineData("GET chat HTTP/1.1")]
    [InlineData("GET http://host/chat HTTP/1.1")]
    [InlineData("GET /ch\u00e9t HTTP/1.1")]
    [InlineData(" GET / HTTP/1.1")]
    [InlineData("")]
    public void Malformed_request_line_is_rejected_with_400(string requestLine)
    {
        AssertRejected(Request(requestLine), 400);
    }

    [Theory]
    [InlineData("NoColon")]
    [InlineData("Bad Name: x")]
    [InlineData("Host : relay.example.com")]
    [InlineData(": empty-name")]
    [InlineData(" folded: continuation")]
    [InlineData("X-Control: a\u0001b")]
    [InlineData("X-Bare-Lf: a\nb")]
    public void Malformed_header_line_is_rejected_with_400(string line)
    {
        AssertRejected(Request("GET / HTTP/1.1", [.. DefaultHeaders, line]), 400);
    }

    [Fact]
    public void Missing_host_is_rejected_with_400()
    {
        AssertRejected(Request("GET / HTTP/1.1", HeadersWithout("Host")), 400);
    }

    [Fact]
    public void Duplicate_host_is_rejected_with_400()
    {
        AssertRejected(Request("GET / HTTP/1.1", [.. DefaultHeaders, "Host: other.example.com"]), 400);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("h2c")]
    [InlineData("websocket2")]
    public void Upgrade_without_websocket_token_is_rejected_with_400(string? value)
    {
        string[] headers = value is null ? HeadersWithout("Upgrade") : HeadersWith("Upgrade", value);

        AssertRejected(Request("GET / HTTP/1.1", headers), 400);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("keep-alive")]
    [InlineData("upgraded")]
    public void Connection_without_upgrade_token_is_rejected_with_400(string? value)
    {
        string[] headers = value is null ? HeadersWithout("Connection") : HeadersWith("Connection", value);

        AssertRejected(Request("GET / HTTP/1.1", headers), 400);
    }

    [Fact]
    public void Connection_list_containing_upgrade_is_accepted()
    {
        Assert.Equal(HandshakeStatus.Accepted, Parse(Request("GET / HTTP/1.1", HeadersWith("Connection", "keep-alive ,Upgrade")), out _, out _));
    }

    [Fact]
    public void Missing_key_is_rejected_with_400()
    {
        AssertRejected(Request("GET / HTTP/1.1", HeadersWithout("Sec-WebSocket-Key")), 400);
    }

    [Theory]
    [InlineData("dGhlIHNhbXBsZSBub25j")]          // 15 bytes
    [InlineData("dGhlIHNhbXBsZSBub25jZXM=")]      // 17 bytes
    [InlineData("dGhlIHNhbXBsZSBub25jZQ")]        // no padding
    [InlineData("dGhlIHNhbXBsZSBub2 5jZQ=")]      // a space inside
    [InlineData("dGhlIHNhbXBsZSBub25jZQ!=")]      // not base64
    public void Key_not_decoding_to_16_bytes_is_rejected_with_400(string key)
    {
        AssertRejected(Request("GET / HTTP/1.1", HeadersWith("Sec-WebSocket-Key", key)), 400);
    }

    [Fact]
    public void Duplicate_key_is_rejected_with_400()
    {
        AssertRejected(Request("GET / HTTP/1.1", [.. DefaultHeaders, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]), 400);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("8")]
    [InlineData("14")]
    [InlineData("13, 8")]
    public void Unsupported_or_missing_version_is_rejected_with_426(string? version)
    {
        string[] headers = version is null ? HeadersWithout("Sec-WebSocket-Version") : HeadersWith("Sec-WebSocket-Version", version);

        AssertRejected(Request("GET / HTTP/1.1", headers), 426);
    }

    [Fact]
    public void Reject_426_names_the_supported_version()
    {
        Parse(Request("GET / HTTP/1.1", HeadersWith("Sec-WebSocket-Version", "8")), out _, out HandshakeFailure failure);

        Assert.Contains("\r\nSec-WebSocket-Version: 13\r\n", Reject(failure), StringComparison.Ordinal);
    }

    [Fact]
    public void Unterminated_request_reaching_the_limit_is_rejected_with_431()
    {
        string request = "GET / HTTP/1.1\r\nHost: h\r\nX-Filler: " + new string('a', 2000);

        AssertRejected(request, 431, maxRequestBytes: 1024);
    }

    [Fact]
    public void Complete_request_longer_than_the_limit_is_rejected_with_431()
    {
        string request = Request("GET / HTTP/1.1", [.. DefaultHeaders, "X-Filler: " + new string('a', 1000)]);

        AssertRejected(request, 431, maxRequestBytes: 1024);
    }

    [Fact]
    public void Request_of_exactly_the_limit_is_accepted()
    {
        string request = Request();

        Assert.Equal(HandshakeStatus.Accepted, Parse(request, out _, out _, maxRequestBytes: request.Length));
    }

    [Fact]
    public void Rejected_request_leaves_the_buffer_unchanged()
    {
        byte[] bytes = Encoding.ASCII.GetBytes(Request("POST / HTTP/1.1"));
        var buffer = new ReadOnlySequence<byte>(bytes);

        WebSocketHandshake.TryParse(ref buffer, MaxRequestBytes, out _, out _);

        Assert.Equal(bytes.Length, buffer.Length);
    }

    [Fact]
    public void Reject_is_a_complete_plain_text_response_that_closes_the_connection()
    {
        string response = Reject(new HandshakeFailure(400, "Missing Host header"));

        Assert.Equal(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n" +
            "Connection: close\r\n\r\nMissing Host header",
            response);
    }

    [Fact]
    public void Reject_content_length_counts_utf8_bytes()
    {
        string response = Reject(new HandshakeFailure(403, "Origin refusé"));

        Assert.StartsWith("HTTP/1.1 403 Forbidden\r\n", response, StringComparison.Ordinal);
        Assert.Contains("\r\nContent-Length: 14\r\n", response, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\nOrigin refusé", response, StringComparison.Ordinal);
    }

    [Fact]
    public void Reject_431_uses_its_reason_phrase()
    {
        Parse("GET / HTTP/1.1\r\n" + new string('x', 100), out _, out HandshakeFailure failure, maxRequestBytes: 64);

        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n", Reject(failure), StringComparison.Ordinal);
    }
}
