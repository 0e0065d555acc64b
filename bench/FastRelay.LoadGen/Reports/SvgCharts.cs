using System.Globalization;
using System.Text;

namespace FastRelay.LoadGen.Reports;

/// <summary>Hand-written SVG charts (no dependencies): grouped bars on a log axis, lines on log-y, plain bars.</summary>
internal static class SvgCharts
{
    private const int Width = 860;
    private const int Height = 460;
    private const int Left = 80;
    private const int Right = 180;
    private const int Top = 50;
    private const int Bottom = 60;
    private const int PlotWidth = Width - Left - Right;
    private const int PlotHeight = Height - Top - Bottom;

    private static readonly string[] s_palette = ["#2b6cb0", "#38a169", "#c53030", "#d69e2e", "#805ad5", "#319795"];

    /// <summary>One color per target, stable across charts.</summary>
    public static string ColorOf(string target) => target switch
    {
        "fastrelay-ws" => s_palette[0],
        "fastrelay-tcp" => s_palette[1],
        "redis" => s_palette[2],
        _ => s_palette[3 + (Math.Abs(target.GetHashCode()) % 3)],
    };

    /// <summary>Grouped bars: one group per percentile, one bar per target, log-scale µs.</summary>
    public static string LatencyPercentiles(string title, string[] groups, IReadOnlyList<(string Target, double[] Values)> series)
    {
        var svg = Begin(title);
        var all = series.SelectMany(s => s.Values).Where(v => v > 0).DefaultIfEmpty(1).ToArray();
        var axis = new LogAxis(all.Min(), all.Max());
        YAxisLog(svg, axis, "latency (µs, log scale)");
        double groupWidth = PlotWidth / (double)groups.Length;
        double barWidth = groupWidth * 0.8 / Math.Max(1, series.Count);
        for (int g = 0; g < groups.Length; g++)
        {
            double x0 = Left + g * groupWidth + groupWidth * 0.1;
            for (int s = 0; s < series.Count; s++)
            {
                double v = series[s].Values[g];
                if (v <= 0)
                {
                    continue;
                }

                double y = axis.Y(v);
                double x = x0 + s * barWidth;
                svg.Append(F($"<rect x=\"{x:0.#}\" y=\"{y:0.#}\" width=\"{barWidth - 2:0.#}\" height=\"{Top + PlotHeight - y:0.#}\" fill=\"{ColorOf(series[s].Target)}\"><title>{Escape(series[s].Target)} {groups[g]}: {v:0.#} µs</title></rect>\n"));
                svg.Append(F($"<text x=\"{x + (barWidth - 2) / 2:0.#}\" y=\"{y - 3:0.#}\" font-size=\"9\" text-anchor=\"middle\">{Compact(v)}</text>\n"));
            }

            svg.Append(F($"<text x=\"{Left + g * groupWidth + groupWidth / 2:0.#}\" y=\"{Top + PlotHeight + 18}\" font-size=\"12\" text-anchor=\"middle\">{Escape(groups[g])}</text>\n"));
        }

        Legend(svg, series.Select(s => (s.Target, false)).ToList());
        return End(svg);
    }

    /// <summary>Latency against delivered throughput: p99 solid, p99.9 dashed; one color per target; log-y.</summary>
    public static string LatencyVsThroughput(string title, IReadOnlyList<(string Target, (double Throughput, double P99, double P999, string Rate)[] Points)> series)
    {
        var svg = Begin(title);
        var latencies = series.SelectMany(s => s.Points).SelectMany(p => new[] { p.P99, p.P999 }).Where(v => v > 0).DefaultIfEmpty(1).ToArray();
        var axis = new LogAxis(latencies.Min(), latencies.Max());
        YAxisLog(svg, axis, "latency (µs, log scale)");
        double maxX = series.SelectMany(s => s.Points).Select(p => p.Throughput).DefaultIfEmpty(1).Max() * 1.1;
        maxX = NiceCeiling(maxX);
        double X(double v) => Left + v / maxX * PlotWidth;
        for (int i = 0; i <= 5; i++)
        {
            double v = maxX * i / 5;
            double x = X(v);
            svg.Append(F($"<line x1=\"{x:0.#}\" y1=\"{Top}\" x2=\"{x:0.#}\" y2=\"{Top + PlotHeight}\" stroke=\"#eee\"/>\n"));
            svg.Append(F($"<text x=\"{x:0.#}\" y=\"{Top + PlotHeight + 18}\" font-size=\"11\" text-anchor=\"middle\">{Compact(v)}</text>\n"));
        }

        svg.Append(F($"<text x=\"{Left + PlotWidth / 2}\" y=\"{Height - 15}\" font-size=\"12\" text-anchor=\"middle\">delivered messages/s</text>\n"));
        foreach (var (target, points) in series)
        {
            var ordered = points.Where(p => p.Throughput > 0).OrderBy(p => p.Throughput).ToArray();
            string color = ColorOf(target);
            foreach (var (pick, dash) in new (Func<(double Throughput, double P99, double P999, string Rate), double>, bool)[] { (p => p.P99, false), (p => p.P999, true) })
            {
                var visible = ordered.Where(p => pick(p) > 0).ToArray();
                if (visible.Length == 0)
                {
                    continue;
                }

                string path = string.Join(" ", visible.Select(p => F($"{X(p.Throughput):0.#},{axis.Y(pick(p)):0.#}")));
                svg.Append(F($"<polyline points=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{(dash ? " stroke-dasharray=\"6,4\"" : "")}/>\n"));
                foreach (var p in visible)
                {
                    svg.Append(F($"<circle cx=\"{X(p.Throughput):0.#}\" cy=\"{axis.Y(pick(p)):0.#}\" r=\"3.5\" fill=\"{(dash ? "white" : color)}\" stroke=\"{color}\"><title>{Escape(target)} rate {Escape(p.Rate)}: {p.Throughput:N0} msg/s, {(dash ? "p99.9" : "p99")} {pick(p):N0} µs</title></circle>\n"));
                }
            }
        }

        Legend(svg, series.Select(s => (s.Target, false)).ToList(), ["solid: p99", "dashed: p99.9"]);
        return End(svg);
    }

    /// <summary>Plain bars on a linear axis (memory per connection).</summary>
    /// <param name="reference">An optional dashed horizontal line (a design target) with its label.</param>
    public static string Bars(string title, string yLabel, IReadOnlyList<(string Label, string Target, double Value)> bars, (double Value, string Label)? reference = null)
    {
        var svg = Begin(title);
        double max = NiceCeiling(Math.Max(bars.Select(b => b.Value).DefaultIfEmpty(1).Max(), reference?.Value ?? 0) * 1.1);
        double Y(double v) => Top + PlotHeight - v / max * PlotHeight;
        for (int i = 0; i <= 5; i++)
        {
            double v = max * i / 5;
            svg.Append(F($"<line x1=\"{Left}\" y1=\"{Y(v):0.#}\" x2=\"{Left + PlotWidth}\" y2=\"{Y(v):0.#}\" stroke=\"#eee\"/>\n"));
            svg.Append(F($"<text x=\"{Left - 6}\" y=\"{Y(v) + 4:0.#}\" font-size=\"11\" text-anchor=\"end\">{Compact(v)}</text>\n"));
        }

        YLabel(svg, yLabel);
        double slot = PlotWidth / (double)Math.Max(1, bars.Count);
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, target, value) = bars[i];
            double x = Left + i * slot + slot * 0.15;
            double w = slot * 0.7;
            double y = Y(Math.Max(0, value));
            svg.Append(F($"<rect x=\"{x:0.#}\" y=\"{y:0.#}\" width=\"{w:0.#}\" height=\"{Top + PlotHeight - y:0.#}\" fill=\"{ColorOf(target)}\"><title>{Escape(label)}: {value:N0}</title></rect>\n"));
            svg.Append(F($"<text x=\"{x + w / 2:0.#}\" y=\"{y - 4:0.#}\" font-size=\"11\" text-anchor=\"middle\">{value:N0}</text>\n"));
            string[] lines = label.Split('\n');
            for (int l = 0; l < lines.Length; l++)
            {
                svg.Append(F($"<text x=\"{x + w / 2:0.#}\" y=\"{Top + PlotHeight + 16 + 13 * l}\" font-size=\"11\" text-anchor=\"middle\">{Escape(lines[l])}</text>\n"));
            }
        }

        string[] notes = [];
        if (reference is { } line)
        {
            double y = Y(line.Value);
            svg.Append(F($"<line x1=\"{Left}\" y1=\"{y:0.#}\" x2=\"{Left + PlotWidth}\" y2=\"{y:0.#}\" stroke=\"#333\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\"/>\n"));
            notes = ["dashed line:", .. WrapWords(line.Label, 22)];
        }

        Legend(svg, bars.Select(b => (b.Target, false)).Distinct().ToList(), notes);
        return End(svg);
    }

    /// <summary>Starts a chart; a title "Main — detail" is drawn as a bold line and a smaller subtitle line.</summary>
    private static string[] WrapWords(string text, int width)
    {
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (string word in text.Split(' '))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                lines.Add(line.ToString());
                line.Clear();
            }

            line.Append(line.Length > 0 ? " " : "").Append(word);
        }

        if (line.Length > 0)
        {
            lines.Add(line.ToString());
        }

        return lines.ToArray();
    }

    private static StringBuilder Begin(string title)
    {
        var svg = new StringBuilder();
        svg.Append(F($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\">\n"));
        svg.Append(F($"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n"));
        int dash = title.IndexOf(" — ", StringComparison.Ordinal);
        string main = dash > 0 ? title[..dash] : title;
        string? sub = dash > 0 ? title[(dash + 3)..] : null;
        svg.Append(F($"<text x=\"{Width / 2}\" y=\"{(sub is null ? 28 : 20)}\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">{Escape(main)}</text>\n"));
        if (sub is not null)
        {
            svg.Append(F($"<text x=\"{Width / 2}\" y=\"38\" font-size=\"11\" fill=\"#444\" text-anchor=\"middle\">{Escape(sub)}</text>\n"));
        }

        svg.Append(F($"<rect x=\"{Left}\" y=\"{Top}\" width=\"{PlotWidth}\" height=\"{PlotHeight}\" fill=\"none\" stroke=\"#999\"/>\n"));
        return svg;
    }

    private static string End(StringBuilder svg) => svg.Append("</svg>\n").ToString();

    private static void YAxisLog(StringBuilder svg, LogAxis axis, string label)
    {
        for (int e = axis.MinExponent; e <= axis.MaxExponent; e++)
        {
            double v = Math.Pow(10, e);
            double y = axis.Y(v);
            svg.Append(F($"<line x1=\"{Left}\" y1=\"{y:0.#}\" x2=\"{Left + PlotWidth}\" y2=\"{y:0.#}\" stroke=\"#ddd\"/>\n"));
            svg.Append(F($"<text x=\"{Left - 6}\" y=\"{y + 4:0.#}\" font-size=\"11\" text-anchor=\"end\">{Compact(v)}</text>\n"));
            if (e < axis.MaxExponent)
            {
                foreach (int m in new[] { 2, 5 })
                {
                    double ym = axis.Y(m * v);
                    svg.Append(F($"<line x1=\"{Left}\" y1=\"{ym:0.#}\" x2=\"{Left + PlotWidth}\" y2=\"{ym:0.#}\" stroke=\"#f3f3f3\"/>\n"));
                }
            }
        }

        YLabel(svg, label);
    }

    private static void YLabel(StringBuilder svg, string label) =>
        svg.Append(F($"<text x=\"18\" y=\"{Top + PlotHeight / 2}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 18 {Top + PlotHeight / 2})\">{Escape(label)}</text>\n"));

    private static void Legend(StringBuilder svg, IReadOnlyList<(string Target, bool Dashed)> entries, string[]? notes = null)
    {
        int x = Left + PlotWidth + 16;
        int y = Top + 10;
        foreach (var (target, _) in entries)
        {
            svg.Append(F($"<rect x=\"{x}\" y=\"{y - 10}\" width=\"14\" height=\"14\" fill=\"{ColorOf(target)}\"/>\n"));
            svg.Append(F($"<text x=\"{x + 20}\" y=\"{y + 2}\" font-size=\"12\">{Escape(target)}</text>\n"));
            y += 22;
        }

        foreach (string note in notes ?? [])
        {
            svg.Append(F($"<text x=\"{x}\" y=\"{y + 2}\" font-size=\"11\" fill=\"#555\">{Escape(note)}</text>\n"));
            y += 18;
        }
    }

    private readonly struct LogAxis
    {
        public LogAxis(double min, double max)
        {
            MinExponent = (int)Math.Floor(Math.Log10(Math.Max(min, 0.1)));
            MaxExponent = (int)Math.Ceiling(Math.Log10(Math.Max(max, 1)));
            if (MaxExponent <= MinExponent)
            {
                MaxExponent = MinExponent + 1;
            }
        }

        public int MinExponent { get; }

        public int MaxExponent { get; }

        public double Y(double v)
        {
            double t = (Math.Log10(Math.Max(v, Math.Pow(10, MinExponent))) - MinExponent) / (MaxExponent - MinExponent);
            return Top + PlotHeight - t * PlotHeight;
        }
    }

    private static double NiceCeiling(double v)
    {
        if (v <= 0)
        {
            return 1;
        }

        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (double step in new[] { 1, 2, 2.5, 5, 10 })
        {
            if (step * magnitude >= v)
            {
                return step * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private static string Compact(double v) => v switch
    {
        >= 1e9 => F($"{v / 1e9:0.##}G"),
        >= 1e6 => F($"{v / 1e6:0.##}M"),
        >= 1e3 => F($"{v / 1e3:0.##}k"),
        >= 10 => F($"{v:0}"),
        _ => F($"{v:0.#}"),
    };

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&quot;");
}
