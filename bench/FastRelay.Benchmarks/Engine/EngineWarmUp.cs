using System.Diagnostics;
using System.Text;
using FastRelay.Core;
using FastRelay.Core.Sessions;

namespace FastRelay.Benchmarks.Engine;

/// <summary>
/// Brings an engine's per-shard state to its steady size before anything is measured. The dedup table grows to
/// Dedup.MaxEntriesPerShard before it starts recycling entries (it allocates while it grows, by design, never
/// after), and a topic's history takes slabs until it holds Retention.MaxEvents (native memory, not a managed
/// allocation, but slower than reusing a slab). Measuring before they are full would charge that one-off growth to
/// the hot path.
/// </summary>
internal static class EngineWarmUp
{
    private static readonly long TimeoutTicks = Stopwatch.Frequency * 60;

    /// <summary>
    /// Publishes Dedup.MaxEntriesPerShard PUBs with fresh message ids to a topic without subscribers that lives on
    /// the same shard as <paramref name="topic"/>, paced so the shard inbox never fills (no BACKOFF).
    /// </summary>
    public static void FillDedupTable(RelayEngine engine, Session publisher, string topic)
    {
        int shard = engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(topic));
        string filler = Enumerable.Range(0, 1000).Select(i => $"bench.fill.{i}")
            .First(t => engine.ShardIndexOf(0, Encoding.UTF8.GetBytes(t)) == shard);
        var pubs = new PubSource(filler, 16);
        int total = engine.Options.Dedup.MaxEntriesPerShard;
        int chunk = Math.Min(4096, engine.Options.ShardInboxCapacity / 2);
        for (int sent = 0; sent < total; sent += chunk)
        {
            long target = engine.Published + Math.Min(chunk, total - sent);
            for (int i = 0; i < Math.Min(chunk, total - sent); i++)
            {
                if (!publisher.OnEnvelope(pubs.Next()))
                {
                    throw new InvalidOperationException($"publisher closed: {publisher.CloseReason}");
                }
            }

            WaitUntilPublished(engine, target);
        }
    }

    public static void WaitUntilPublished(RelayEngine engine, long target)
    {
        long started = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        while (engine.Published < target)
        {
            if (Stopwatch.GetTimestamp() - started > TimeoutTicks)
            {
                throw new TimeoutException($"shards sequenced {engine.Published} of {target} publishes (backoffs {engine.Backoffs})");
            }

            spin.SpinOnce(sleep1Threshold: -1);
        }
    }
}
