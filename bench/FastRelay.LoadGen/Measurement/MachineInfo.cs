using System.Runtime.InteropServices;
using FastRelay.LoadGen.Cli;
using FastRelay.LoadGen.Targets;

namespace FastRelay.LoadGen.Measurement;

/// <summary>What the numbers were measured on.</summary>
internal sealed record MachineInfo(
    int Processors,
    string CpuModel,
    long MemoryBytes,
    string Kernel,
    string Runtime,
    string Os,
    string FastRelayServer,
    string RedisServer,
    ulong OpenFilesLimit,
    DateTimeOffset StartedAt)
{
    public static MachineInfo Collect(LoadGenOptions options, ulong openFiles)
    {
        string server;
        try
        {
            server = options.Targets.Any(t => t.IsFastRelay()) ? TargetProcess.ResolveFastRelay(options.ServerPath).Description : "not run";
        }
        catch (InvalidOperationException ex)
        {
            server = ex.Message;
        }

        string redis = "not run";
        if (options.Targets.Contains(TargetKind.Redis))
        {
            try
            {
                redis = TargetProcess.RedisVersion(TargetProcess.ResolveRedis(options.RedisServerPath));
            }
            catch (InvalidOperationException ex)
            {
                redis = ex.Message;
            }
        }

        return new MachineInfo(
            Environment.ProcessorCount,
            ReadCpuModel(),
            ReadMemTotal(),
            ReadTrim("/proc/sys/kernel/osrelease"),
            RuntimeInformation.FrameworkDescription,
            RuntimeInformation.OSDescription,
            server,
            redis,
            openFiles,
            DateTimeOffset.UtcNow);
    }

    /// <summary>The 1-minute load average (/proc/loadavg): how busy the shared box was, other tenants included.</summary>
    public static double LoadAverage()
    {
        try
        {
            string first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or FormatException)
        {
            return double.NaN;
        }
    }

    private static string ReadCpuModel()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal))
                {
                    return line[(line.IndexOf(':') + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }

        return "unknown";
    }

    private static long ReadMemTotal()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    string kb = line["MemTotal:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, System.Globalization.CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }

    private static string ReadTrim(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
