using System.Globalization;

namespace FastRelay.GcProbe;

/// <summary>
/// fastrelay-gcprobe: attaches to a running .NET process (the Native-AOT fastrelay included) over its diagnostics
/// IPC port, records GC events over EventPipe and prints what the process allocated and collected in a window.
/// </summary>
internal static class Program
{
    private const string Usage = """
        fastrelay-gcprobe — GC collections and allocated bytes of a running process, over EventPipe

        Usage:
          fastrelay-gcprobe --pid PID [--seconds S] [--counter-interval S]

          --pid PID              process to attach to (its diagnostics socket /tmp/dotnet-diagnostic-PID-*-socket)
          --seconds S            measure the S seconds after attaching, print the result, exit
          --counter-interval S   System.Runtime EventCounters interval, 0 = no counters [1]

        Without --seconds the window is driven over stdin (this is how fastrelay-loadgen --diagnostics uses it):
        the probe prints "ready" once the session runs; a line "begin" opens the window, "end" closes it (or
        end of input); the probe then stops the session and prints one line of JSON with the window's figures.
        """;

    public static async Task<int> Main(string[] args)
    {
        int pid = 0;
        double? seconds = null;
        int counterInterval = 1;
        for (int i = 0; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : "";
            switch (args[i])
            {
                case "--pid": pid = int.Parse(value, CultureInfo.InvariantCulture); i++; break;
                case "--seconds": seconds = double.Parse(value, CultureInfo.InvariantCulture); i++; break;
                case "--counter-interval": counterInterval = int.Parse(value, CultureInfo.InvariantCulture); i++; break;
                case "-h" or "--help": Console.Out.WriteLine(Usage); return 0;
                default: Console.Error.WriteLine($"fastrelay-gcprobe: unknown option {args[i]}\n\n{Usage}"); return 2;
            }
        }

        if (pid <= 0)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        GcSession session;
        try
        {
            session = GcSession.Start(pid, counterInterval);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"fastrelay-gcprobe: cannot attach to {pid}: {ex.GetType().Name}: {ex.Message}");
            return 3;
        }

        using (session)
        {
            Console.Out.WriteLine("ready");
            Console.Out.Flush();
            if (seconds is double s)
            {
                session.Begin();
                await Task.Delay(TimeSpan.FromSeconds(s)).ConfigureAwait(false);
                session.End();
            }
            else
            {
                while (await Console.In.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    if (line == "begin")
                    {
                        session.Begin();
                    }
                    else if (line == "end")
                    {
                        break;
                    }
                }

                session.End(); // also on end of input: whatever was open is closed now
            }

            var result = await session.StopAsync().ConfigureAwait(false);
            Console.Out.WriteLine(result.ToJson(pid));
            Console.Out.Flush();
        }

        return 0;
    }
}
