using System.Globalization;

namespace FastRelay.LoadGen.Targets;

/// <summary>Reads a process's CPU time and memory from /proc (Linux).</summary>
internal static class ProcessStats
{
    private static readonly double s_secondsPerTick = 1.0 / Posix.ClockTicksPerSecond();

    /// <summary>utime + stime of <paramref name="pid"/> in seconds (all threads), or NaN when unreadable.</summary>
    public static double CpuSeconds(int pid) => StatCpuSeconds($"/proc/{pid}/stat");

    /// <summary>Per live thread: id → (name, utime + stime seconds). Threads that exit in between are simply missing.</summary>
    public static Dictionary<int, (string Name, double CpuSeconds)> ThreadCpu(int pid)
    {
        var threads = new Dictionary<int, (string, double)>();
        try
        {
            foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    int tid = int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture);
                    string name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                    double cpu = StatCpuSeconds(Path.Combine(task, "stat"));
                    if (!double.IsNaN(cpu))
                    {
                        threads[tid] = (name, cpu);
                    }
                }
                catch (Exception ex) when (ex is IOException or FormatException)
                {
                    // the thread exited while we read
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return threads;
    }

    /// <summary>
    /// CPU used between two <see cref="ThreadCpu"/> snapshots, grouped by thread name (digits stripped, so the
    /// pool's workers and the shards each form one group): name → (seconds, threads), largest first.
    /// </summary>
    public static List<(string Name, double CpuSeconds, int Threads)> ThreadCpuDelta(Dictionary<int, (string Name, double CpuSeconds)> before, Dictionary<int, (string Name, double CpuSeconds)> after)
    {
        var groups = new Dictionary<string, (double Cpu, int Threads)>(StringComparer.Ordinal);
        foreach (var (tid, (name, cpu)) in after)
        {
            double used = cpu - (before.TryGetValue(tid, out var b) ? b.CpuSeconds : 0);
            string group = new string(name.Where(c => !char.IsDigit(c)).ToArray()).TrimEnd('-', ' ', '#');
            groups.TryGetValue(group, out var g);
            groups[group] = (g.Cpu + used, g.Threads + 1);
        }

        return groups.Select(g => (g.Key, g.Value.Cpu, g.Value.Threads)).OrderByDescending(g => g.Cpu).ToList();
    }

    private static double StatCpuSeconds(string path)
    {
        try
        {
            string stat = File.ReadAllText(path);
            // Field 2 (comm) may contain spaces: count fields after its closing parenthesis.
            int close = stat.LastIndexOf(')');
            string[] fields = stat[(close + 2)..].Split(' ');
            // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
            long utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            long stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (utime + stime) * s_secondsPerTick;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return double.NaN;
        }
    }

    /// <summary>A "VmXxx:  N kB" line of /proc/PID/status in bytes (VmRSS, VmHWM), or -1.</summary>
    public static long StatusBytes(int pid, string field)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal) && line.Length > field.Length && line[field.Length] == ':')
                {
                    string value = line[(field.Length + 1)..].Trim();
                    int space = value.IndexOf(' ');
                    return long.Parse(space > 0 ? value[..space] : value, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return -1;
    }

    /// <summary>Voluntary + involuntary context switches summed over the process's live threads, or -1.</summary>
    public static long ContextSwitches(int pid)
    {
        long total = 0;
        try
        {
            foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    foreach (string line in File.ReadLines(Path.Combine(task, "status")))
                    {
                        if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                        {
                            total += long.Parse(line[(line.IndexOf(':') + 1)..].Trim(), CultureInfo.InvariantCulture);
                        }
                    }
                }
                catch (IOException)
                {
                    // the thread exited while we read
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return -1;
        }

        return total;
    }

    /// <summary>Threads in the process now, or -1.</summary>
    public static int Threads(int pid)
    {
        try
        {
            return Directory.EnumerateDirectories($"/proc/{pid}/task").Count();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    public static long RssBytes(int pid) => StatusBytes(pid, "VmRSS");

    public static long PeakRssBytes(int pid) => StatusBytes(pid, "VmHWM");

    /// <summary>Open sockets of <paramref name="pid"/> (entries of /proc/PID/fd linking to socket:[...]); -1 when unreadable.</summary>
    public static int SocketCount(int pid)
    {
        try
        {
            int n = 0;
            foreach (string fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
            {
                try
                {
                    if (new FileInfo(fd).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true)
                    {
                        n++;
                    }
                }
                catch (IOException)
                {
                    // closed while we looked
                }
            }

            return n;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }
}
