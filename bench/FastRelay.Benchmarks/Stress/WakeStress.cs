using System.Diagnostics;
using System.Globalization;
using FastRelay.Core;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Benchmarks.Stress;

/// <summary>
/// `--wake-stress [seconds]`: ping-pong through one shard and one awaiting outbox writer to catch lost wake-ups.
/// Each round publishes two PUBs with request ids a random 0–100 µs apart and waits until the writer task (awaiting
/// <see cref="Outbox.WaitAsync"/> like a transport's write loop) has taken both ACKs, then pauses 0–150 µs, so that
/// some posts land just as the shard parks and some ACKs just as the writer goes back to waiting. A round without its ACK after 3 s is a
/// stall (no scheduler delay is that long): the shard asleep with work in its inbox, or the writer asleep with a
/// frame in its outbox. The next post wakes both. Exit 1 when any round stalled.
/// </summary>
internal static class WakeStress
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
        long taken = 0;
        var writer = Task.Run(async () =>
        {
            var outbox = session.Outbox;
            while (!outbox.IsCompleted)
            {
                await outbox.WaitAsync().ConfigureAwait(false);
                while (outbox.TryDequeue(out var frame))
                {
                    frame.Release();
                    Interlocked.Increment(ref taken);
                }
            }
        });

        var random = new Random(1);
        var elapsed = Stopwatch.StartNew();
        long rounds = 0;
        int shardStalls = 0, writerStalls = 0;
        ulong requestId = 1;
        var slowest = TimeSpan.Zero;
        long published = 0;
        while (elapsed.Elapsed.TotalSeconds < seconds)
        {
            // Two PUBs a random 0–100 µs apart: the second ACK often lands as the writer finishes the first and
            // goes back to waiting; the first PUB often lands as the idle shard parks.
            long sent = Stopwatch.GetTimestamp();
            long expected = Interlocked.Read(ref taken) + 2;
            Publish(session, ++requestId);
            Pause(random, 100);
            Publish(session, ++requestId);
            published += 2;
            if (!WaitFor(() => Interlocked.Read(ref taken) >= expected, StallAfter))
            {
                // Published counts sequenced publishes: behind means the shard never ran a command it was given.
                bool shardAsleep = engine.Published < published;
                if (shardAsleep)
                {
                    shardStalls++;
                }
                else
                {
                    writerStalls++;
                }

                Console.WriteLine(shardAsleep
                    ? $"round {rounds}: shard asleep with PUB {requestId} in its inbox for {StallAfter.TotalSeconds} s"
                    : $"round {rounds}: writer asleep with an ACK in its outbox for {StallAfter.TotalSeconds} s (outbox count {session.Outbox.Count})");
                Publish(session, ++requestId);
                published++;
                expected++;
                bool recovered = WaitFor(() => Interlocked.Read(ref taken) >= expected, StallAfter);
                Console.WriteLine($"  the next post woke it: {(recovered ? "every ACK arrived" : "still stuck")}");
            }
            else
            {
                var took = Stopwatch.GetElapsedTime(sent);
                slowest = took > slowest ? took : slowest;
            }

            rounds++;
            Pause(random, 150);
        }

        session.Close(SessionCloseKind.Normal, "stress over");
        writer.Wait(StallAfter);
        Console.WriteLine($"{rounds} rounds ({published} publishes) in {elapsed.Elapsed.TotalSeconds:F0} s: {shardStalls} shard stalls, {writerStalls} writer stalls (lost wake-ups); slowest ACK otherwise {slowest.TotalMilliseconds:F1} ms");
        return shardStalls + writerStalls == 0 ? 0 : 1;
    }

    private static void Publish(Session session, ulong requestId)
    {
        var pub = new Envelope(FrameType.Pub).WithRequestId(requestId).WithTopic("stress.wake").WithPayload(new byte[8]);
        if (!session.OnEnvelope(Engine.InProcessPeer.Encode(in pub)))
        {
            throw new InvalidOperationException($"{session} closed: {session.CloseReason}");
        }
    }

    private static void Pause(Random random, int maxMicroseconds)
    {
        long until = Stopwatch.GetTimestamp() + (long)(random.NextDouble() * maxMicroseconds * 1e-6 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < until)
        {
            Thread.SpinWait(5);
        }
    }

    private static bool WaitFor(Func<bool> condition, TimeSpan timeout)
    {
        long started = Stopwatch.GetTimestamp();
        while (!condition())
        {
            if (Stopwatch.GetElapsedTime(started) > timeout)
            {
                return false;
            }

            Thread.SpinWait(10);
        }

        return true;
    }
}
