using System.Runtime.InteropServices;

namespace FastRelay.LoadGen.Targets;

/// <summary>The few libc calls the load generator needs (source-generated P/Invoke: Native-AOT safe).</summary>
internal static partial class Posix
{
    public const int SigTerm = 15;
    private const int RlimitNoFile = 7;
    private const int ScClkTck = 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, in RLimit limit);

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);

    /// <summary>Sends SIGTERM (Process.Kill sends SIGKILL, which skips the server's graceful stop).</summary>
    public static bool Terminate(int pid) => Kill(pid, SigTerm) == 0;

    /// <summary>Raises the open-files soft limit to the hard limit (child processes inherit it); returns the soft limit.</summary>
    public static ulong RaiseOpenFilesLimit()
    {
        if (GetRLimit(RlimitNoFile, out var limit) != 0)
        {
            return 0;
        }

        if (limit.Current < limit.Maximum)
        {
            var raised = new RLimit { Current = limit.Maximum, Maximum = limit.Maximum };
            if (SetRLimit(RlimitNoFile, in raised) == 0)
            {
                return raised.Current;
            }
        }

        return limit.Current;
    }

    /// <summary>Clock ticks per second, the unit of utime/stime in /proc/PID/stat.</summary>
    public static long ClockTicksPerSecond()
    {
        long ticks = SysConf(ScClkTck);
        return ticks > 0 ? ticks : 100;
    }
}
