using System.Diagnostics;
using System.Globalization;
using FastRelay.Core;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Stress;

/// <summary>
/// `--wake-stress [seconds]`: ping-pong against one shard to catch a lost wake-up. Each round publishes one PUB with a
/// request id and waits for its ACK, then pauses 0–150 µs so that some posts land just as the idle shard parks.
/// An ACK missing for 3 s is a shard asleep with work in its inbox (no scheduler delay is that long); the next post
/// wakes it. Exit 1 when any round stalled.
/// </summary>
internal static class ShardWakeStress
{
    private static readonly TimeSpan StallAfter = TimeSpan.FromSeconds(3);

    public static int Run(string[] args)
    {
        int at = Array.IndexOf(args, "--wake-stress");
        int seconds = at + 1 < args.Length && int.TryParse(args[at + 1], CultureInfo.InvariantCulture, out int s) ? s : 60;

        using var engine = new RelayEngine(new RelayOptions { Shards = 1, NodeName = "stress" });
        var peer = new Engine.InProcessPeer(engine, "stress");
        peer.Hello("stress-1");
        var session = peer.Session;
        var random = new Random(1);
        var elapsed = Stopwatch.StartNew();
        long rounds = 0;
        int stalls = 0;
        ulong requestId = 1;
        var slowest = TimeSpan.Zero;
        while (elapsed.Elapsed.TotalSeconds < seconds)
        {
            long sent = Stopwatch.GetTimestamp();
            Publish(session, ++requestId);
            if (!TryTake(session, StallAfter))
            {
                stalls++;
                Console.WriteLine($"round {rounds}: no ACK for request {requestId} within {StallAfter.TotalSeconds} s; publishing again");
                Publish(session, ++requestId);
                int acks = (TryTake(session, StallAfter) ? 1 : 0) + (TryTake(session, StallAfter) ? 1 : 0);
                Console.WriteLine($"  the next post woke the shard: {acks} of 2 ACKs arrived");
            }
            else
            {
                var took = Stopwatch.GetElapsedTime(sent);
                slowest = took > slowest ? took : slowest;
            }

            rounds++;
            long until = Stopwatch.GetTimestamp() + (long)(random.NextDouble() * 150e-6 * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < until)
            {
                Thread.SpinWait(5);
            }
        }

        Console.WriteLine($"{rounds} rounds in {elapsed.Elapsed.TotalSeconds:F0} s: {stalls} stalled (lost wake-ups); slowest ACK otherwise {slowest.TotalMilliseconds:F1} ms");
        return stalls == 0 ? 0 : 1;
    }

    private static void Publish(FastRelay.Core.Sessions.Session session, ulong requestId)
    {
        var pub = new Envelope(FrameType.Pub).WithRequestId(requestId).WithTopic("stress.wake").WithPayload(new byte[8]);
        if (!session.OnEnvelope(Engine.InProcessPeer.Encode(in pub)))
        {
            throw new InvalidOperationException($"{session} closed: {session.CloseReason}");
        }
    }

    private static bool TryTake(FastRelay.Core.Sessions.Session session, TimeSpan timeout)
    {
        long started = Stopwatch.GetTimestamp();
        Frame frame;
        while (!session.Outbox.TryDequeue(out frame))
        {
            if (Stopwatch.GetElapsedTime(started) > timeout)
            {
                return false;
            }

            Thread.SpinWait(10);
        }

        frame.Release();
        return true;
    }
}
