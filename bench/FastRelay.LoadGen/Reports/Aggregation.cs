namespace FastRelay.LoadGen.Reports;

/// <summary>
/// Folds repeated runs of one (rate, target) into one row: medians for rates, latencies and CPU (robust to a
/// noisy neighbour on a shared box), sums for everything that counts a problem (lost, backoffs, errors).
/// </summary>
internal static class Aggregation
{
    public static List<PubSubResult> Medians(IReadOnlyList<PubSubResult> runs)
    {
        var rows = new List<PubSubResult>();
        foreach (var group in runs.GroupBy(r => (r.Rate, r.Target)))
        {
            var all = group.ToList();
            var ok = all.Where(r => r.Failure is null).ToList();
            var first = all[0];
            var row = new PubSubResult
            {
                Scenario = first.Scenario,
                Target = first.Target,
                Server = first.Server,
                Rate = first.Rate,
                Topics = first.Topics,
                SubscribersPerTopic = first.SubscribersPerTopic,
                Publishers = first.Publishers,
                PayloadBytes = first.PayloadBytes,
                Window = first.Window,
                Repeat = 0,
                Runs = ok.Count,
            };
            if (ok.Count == 0)
            {
                row.Failure = first.Failure;
                rows.Add(row);
                continue;
            }

            row.MeasuredSeconds = Median(ok, r => r.MeasuredSeconds);
            row.SentPerSecond = Median(ok, r => r.SentPerSecond);
            row.DeliveredPerSecond = Median(ok, r => r.DeliveredPerSecond);
            row.SentInWindow = (long)Median(ok, r => r.SentInWindow);
            row.DeliveredInWindow = (long)Median(ok, r => r.DeliveredInWindow);
            row.P50Us = Median(ok, r => r.P50Us);
            row.P90Us = Median(ok, r => r.P90Us);
            row.P99Us = Median(ok, r => r.P99Us);
            row.P999Us = Median(ok, r => r.P999Us);
            row.P9999Us = Median(ok, r => r.P9999Us);
            row.MaxUs = ok.Max(r => r.MaxUs);
            row.MeanUs = Median(ok, r => r.MeanUs);
            row.ServerCpuSeconds = Median(ok, r => r.ServerCpuSeconds);
            row.ServerCpuNsPerDelivery = Median(ok, r => r.ServerCpuNsPerDelivery);
            row.ServerPeakRssBytes = ok.Max(r => r.ServerPeakRssBytes);
            row.ServerContextSwitchesPerSecond = Median(ok, r => r.ServerContextSwitchesPerSecond);
            row.ServerThreads = ok.Max(r => r.ServerThreads);
            row.ClientCpuSeconds = Median(ok, r => r.ClientCpuSeconds);
            row.ClientAllocatedBytesPerDelivery = Median(ok, r => r.ClientAllocatedBytesPerDelivery);
            row.MessagesPerReceive = Median(ok, r => r.MessagesPerReceive);
            row.ServerAllocBytesPerDelivery = Median(ok, r => r.ServerAllocBytesPerDelivery);
            row.ServerCounterAllocBytesPerDelivery = Median(ok, r => r.ServerCounterAllocBytesPerDelivery);
            row.ServerGcsPerMillionDeliveries = Median(ok, r => r.ServerGcsPerMillionDeliveries);
            row.StatsAllocBytesPerDelivery = Median(ok, r => r.StatsAllocBytesPerDelivery);
            // GC counts and the per-type breakdown: the median run by EventPipe bytes per delivery.
            var middle = ok.Where(r => r.ServerGc is not null).OrderBy(r => r.ServerAllocBytesPerDelivery).ToList();
            if (middle.Count > 0)
            {
                var m = middle[middle.Count / 2];
                row.ServerGc = m.ServerGc;
                row.StatsSeconds = m.StatsSeconds;
                row.StatsDelivered = m.StatsDelivered;
                row.StatsAllocatedBytes = m.StatsAllocatedBytes;
                row.StatsCollections = m.StatsCollections;
            }

            row.DiagnosticsError = all.Select(r => r.DiagnosticsError).FirstOrDefault(e => e is not null);
            row.SetupSeconds = Median(ok, r => r.SetupSeconds);
            row.LoadAverage = Median(ok, r => r.LoadAverage);
            row.LatencySamples = ok.Sum(r => r.LatencySamples);
            row.SentTotal = ok.Sum(r => r.SentTotal);
            row.AcceptedTotal = ok.Sum(r => r.AcceptedTotal);
            row.ExpectedDeliveries = ok.Sum(r => r.ExpectedDeliveries);
            row.ReceivedTotal = ok.Sum(r => r.ReceivedTotal);
            row.Lost = ok.Sum(r => r.Lost);
            row.Unanswered = ok.Sum(r => r.Unanswered);
            row.Backoffs = ok.Sum(r => r.Backoffs);
            row.Errors = ok.Sum(r => r.Errors);
            row.UnexpectedCloses = ok.Sum(r => r.UnexpectedCloses);
            row.FirstError = all.Select(r => r.FirstError ?? r.Failure).FirstOrDefault(e => e is not null);
            rows.Add(row);
        }

        return rows;
    }

    private static double Median(List<PubSubResult> runs, Func<PubSubResult, double> pick)
    {
        var values = runs.Select(pick).Where(v => !double.IsNaN(v)).OrderBy(v => v).ToArray();
        if (values.Length == 0)
        {
            return double.NaN;
        }

        int mid = values.Length / 2;
        return values.Length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }
}
