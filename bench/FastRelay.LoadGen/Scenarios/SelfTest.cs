using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Text;
using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Wire;
using FastRelay.Protocol;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>
/// `selftest`: checks the client-side parsers against src/FastRelay.Protocol's EnvelopeCodec (events, acks,
/// masked publishes) and RESP by hand, then times the receive-side parse + latency record per message,
/// so the claim "the load generator is not the bottleneck" has a number behind it. Needs no server.
/// </summary>
internal static class SelfTest
{
    private const int MessagesPerBuffer = 100;

    public static int Run()
    {
        int failures = 0;
        void Check(bool ok, string what)
        {
            Console.Out.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}");
            failures += ok ? 0 : 1;
        }

        byte[] topic = "loadgen.selftest.t0"u8.ToArray();
        byte[] payload = new byte[64];
        long stamp = Stopwatch.GetTimestamp();
        BinaryPrimitives.WriteInt64LittleEndian(payload, stamp);
        byte[] eventBody = EventBody(topic, payload, seq: 42);

        var ws = new FastRelayWebSocketWire(new IPEndPoint(IPAddress.Loopback, 1));
        var tcp = new FastRelayTcpWire();
        var resp = new RespWire();

        foreach (var (wire, framed) in new (WireProtocol, byte[])[] { (ws, ServerWebSocketFrame(eventBody)), (tcp, LengthPrefixed(eventBody)) })
        {
            bool ok = wire.TryRead(framed, 0, framed.Length, out int consumed, out var m);
            Check(ok && consumed == framed.Length && m.Kind == InboundKind.Event && m.Value == 42 && m.SentTimestamp == stamp, $"{wire.Kind}: EVENT skimmed (seq, timestamp)");
            ok = wire.TryRead(framed, 0, framed.Length - 1, out _, out _);
            Check(!ok, $"{wire.Kind}: a truncated EVENT needs more bytes");
        }

        var codec = EnvelopeCodec.TryDecode(eventBody, out var decoded, out _);
        Check(codec == DecodeError.None && decoded.Seq == 42 && decoded.Payload.Span.SequenceEqual(payload), "EnvelopeCodec agrees with the skimmer");
        Check(!EventSkimmer.TryReadEvent(Encode(new Envelope(FrameType.Ack).WithRequestId(1000).WithEpoch(5).WithSeq(9)), out _, out _, out _), "skimmer declines a non-EVENT");

        byte[] ack = LengthPrefixed(Encode(new Envelope(FrameType.Ack).WithRequestId(1234).WithEpoch(5).WithSeq(9)));
        Check(tcp.TryRead(ack, 0, ack.Length, out _, out var ackMessage) && ackMessage.Kind == InboundKind.Ack && ackMessage.RequestId == 1234, "ACK decoded through EnvelopeCodec");

        // A masked client publish, unmasked the way the server does, decodes to the same PUB.
        byte[] pubFrame = new byte[512];
        int pubLength = ws.WritePublish(pubFrame, topic, payload, 77);
        Check(UnmaskedBody(pubFrame.AsSpan(0, pubLength), out byte[] pubBody)
              && EnvelopeCodec.TryDecode(pubBody, out var pub, out _) == DecodeError.None
              && pub.Type == FrameType.Pub && pub.RequestId == 77 && pub.Topic.Span.SequenceEqual(topic) && pub.Payload.Span.SequenceEqual(payload),
            "WebSocket: masked PUB round-trips through EnvelopeCodec");

        byte[] push = RespPush(topic, payload);
        Check(resp.TryRead(push, 0, push.Length, out int pushConsumed, out var pushMessage) && pushConsumed == push.Length && pushMessage.Kind == InboundKind.Event && pushMessage.SentTimestamp == stamp, "RESP: message push parsed");
        Check(!resp.TryRead(push, 0, push.Length - 1, out _, out _), "RESP: a truncated push needs more bytes");
        byte[] integer = ":1000\r\n"u8.ToArray();
        Check(resp.TryRead(integer, 0, integer.Length, out _, out var integerMessage) && integerMessage.Kind == InboundKind.Integer && integerMessage.Value == 1000, "RESP: PUBLISH reply");
        byte[] subscribed = "*3\r\n$9\r\nsubscribe\r\n$19\r\nloadgen.selftest.t0\r\n:1\r\n"u8.ToArray();
        Check(resp.TryRead(subscribed, 0, subscribed.Length, out _, out var subscribedMessage) && resp.IsSubscribed(in subscribedMessage, 0), "RESP: subscribe confirmation");

        Console.Out.WriteLine();
        Console.Out.WriteLine("receive-side cost per message (parse + HdrHistogram record), this machine, single thread, after a warm-up pass:");
        foreach (bool report in new[] { false, true })
        {
            Time(ws, Repeat(ServerWebSocketFrame(eventBody)), report);
            Time(tcp, Repeat(LengthPrefixed(eventBody)), report);
            Time(resp, Repeat(push), report);
        }
        Console.Out.WriteLine("publish-side cost per message (encode + framing), single thread, after a warm-up pass:");
        int warm = 0;
        foreach (var wire in new WireProtocol[] { ws, tcp, resp, ws, tcp, resp })
        {
            byte[] destination = new byte[1024];
            for (int i = 0; i < 10_000; i++)
            {
                wire.WritePublish(destination, topic, payload, (ulong)i + 1000);
            }

            const int publishes = 500_000;
            long before = GC.GetAllocatedBytesForCurrentThread();
            var encodeWatch = Stopwatch.StartNew();
            for (int i = 0; i < publishes; i++)
            {
                wire.WritePublish(destination, topic, payload, (ulong)i + 1000);
            }

            if (warm++ >= 3)
            {
                Console.Out.WriteLine($"  {wire.Kind,-20} {encodeWatch.Elapsed.TotalNanoseconds / publishes,6:0.0} ns/message, {(GC.GetAllocatedBytesForCurrentThread() - before) / (double)publishes:0.00} B allocated/message");
            }
        }

        const int decodes = 500_000;
        double decodeNs = 0;
        for (int pass = 0; pass < 2; pass++)
        {
            var decodeWatch = Stopwatch.StartNew();
            for (int i = 0; i < decodes; i++)
            {
                EnvelopeCodec.TryDecode(eventBody, out _, out _);
            }

            decodeNs = decodeWatch.Elapsed.TotalNanoseconds / decodes;
        }

        Console.Out.WriteLine($"  EnvelopeCodec.TryDecode of the same EVENT (for comparison, after a warm-up pass): {decodeNs:0} ns");
        Console.Out.WriteLine(failures == 0 ? "selftest passed" : $"selftest: {failures} failure(s)");
        return failures == 0 ? 0 : 1;
    }

    private static void Time(WireProtocol wire, byte[] buffer, bool report)
    {
        var recorder = new LatencyRecorder();
        var histogram = recorder.ForCurrentThread();
        long messages = 0;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        for (int round = 0; round < 20_000; round++)
        {
            int offset = 0;
            while (wire.TryRead(buffer, offset, buffer.Length - offset, out int consumed, out var m))
            {
                offset += consumed;
                LatencyRecorder.Record(histogram, 1000 + (m.SentTimestamp & 0xFF));
                messages++;
            }
        }

        double ns = watch.Elapsed.TotalNanoseconds / messages;
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        if (!report)
        {
            return;
        }

        Console.Out.WriteLine($"  {wire.Kind,-20} {ns,6:0.0} ns/message, {allocated / (double)messages:0.00} B allocated/message ({messages:N0} messages)");
    }

    private static byte[] Repeat(byte[] message)
    {
        byte[] buffer = new byte[message.Length * MessagesPerBuffer];
        for (int i = 0; i < MessagesPerBuffer; i++)
        {
            message.CopyTo(buffer, i * message.Length);
        }

        return buffer;
    }

    private static byte[] EventBody(byte[] topic, byte[] payload, ulong seq)
    {
        var frame = Frame.CreateUnpooled();
        var pub = new Envelope(FrameType.Pub).WithTopic(topic).WithPayload(payload).WithClientId("loadgen-1000");
        EnvelopeCodec.EncodeEventTemplate(frame, in pub, 1_700_000_000_000_000);
        frame.StampSequence(1_700_000_000_000_000, seq);
        return frame.Span.ToArray();
    }

    private static byte[] Encode(Envelope envelope)
    {
        var writer = new ArrayBufferWriter<byte>();
        EnvelopeCodec.Encode(writer, in envelope);
        return writer.WrittenSpan.ToArray();
    }

    private static byte[] LengthPrefixed(byte[] body)
    {
        byte[] framed = new byte[RawFraming.HeaderSize + body.Length];
        RawFraming.WriteHeader(framed, body.Length);
        body.CopyTo(framed, RawFraming.HeaderSize);
        return framed;
    }

    /// <summary>What the server sends: FIN + binary, unmasked, minimal length encoding.</summary>
    private static byte[] ServerWebSocketFrame(byte[] body)
    {
        int header = body.Length <= 125 ? 2 : 4;
        byte[] framed = new byte[header + body.Length];
        framed[0] = 0x82;
        if (header == 2)
        {
            framed[1] = (byte)body.Length;
        }
        else
        {
            framed[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(framed.AsSpan(2), (ushort)body.Length);
        }

        body.CopyTo(framed, header);
        return framed;
    }

    private static bool UnmaskedBody(ReadOnlySpan<byte> frame, out byte[] body)
    {
        body = [];
        if (frame[0] != 0x82 || (frame[1] & 0x80) == 0)
        {
            return false;
        }

        int length = frame[1] & 0x7F;
        int pos = 2;
        if (length == 126)
        {
            length = BinaryPrimitives.ReadUInt16BigEndian(frame[2..]);
            pos = 4;
        }

        var mask = frame.Slice(pos, 4);
        pos += 4;
        body = new byte[length];
        for (int i = 0; i < length; i++)
        {
            body[i] = (byte)(frame[pos + i] ^ mask[i & 3]);
        }

        return pos + length == frame.Length;
    }

    private static byte[] RespPush(byte[] channel, byte[] payload)
    {
        var bytes = new List<byte>();
        bytes.AddRange(Encoding.ASCII.GetBytes($"*3\r\n$7\r\nmessage\r\n${channel.Length}\r\n"));
        bytes.AddRange(channel);
        bytes.AddRange(Encoding.ASCII.GetBytes($"\r\n${payload.Length}\r\n"));
        bytes.AddRange(payload);
        bytes.AddRange("\r\n"u8.ToArray());
        return bytes.ToArray();
    }
}
