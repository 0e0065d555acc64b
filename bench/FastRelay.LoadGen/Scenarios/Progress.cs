using System.Diagnostics;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>Live progress on stderr (stdout carries only the final Markdown table).</summary>
internal static class Progress
{
    private static readonly Stopwatch s_clock = Stopwatch.StartNew();

    public static void Line(string text) => Console.Error.WriteLine($"{s_clock.Elapsed.TotalSeconds,7:0.0}s {text}");

    public static void Tick(string label, long elapsedTicks, long sent, long delivered, double sentRate, double deliveredRate, bool measuring, string? firstError)
    {
        double t = elapsedTicks / (double)Stopwatch.Frequency;
        Line($"[{label}] t={t,5:0.0}s {(measuring ? "measure" : "warm-up")}  sent {sent,12:N0} ({Si(sentRate)}/s)  delivered {delivered,14:N0} ({Si(deliveredRate)}/s)" +
             (firstError is null ? "" : $"  ! {firstError}"));
    }

    /// <summary>1234567 → "1.23M".</summary>
    public static string Si(double value) => value switch
    {
        >= 1e9 => $"{value / 1e9:0.00}G",
        >= 1e6 => $"{value / 1e6:0.00}M",
        >= 1e3 => $"{value / 1e3:0.0}k",
        _ => $"{value:0}",
    };
}
