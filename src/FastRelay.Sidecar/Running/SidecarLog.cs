namespace FastRelay.Sidecar.Running;

/// <summary>One-line log records ("HH:mm:ss.fff level message") to a writer (standard error by default); thread-safe.</summary>
public sealed class SidecarLog(TextWriter? output = null, bool verbose = true)
{
    private readonly TextWriter _output = output ?? Console.Error;
    private readonly Lock _gate = new();

    public static SidecarLog Silent { get; } = new(TextWriter.Null, verbose: false);

    /// <summary>Per-job records (started, final, taken over); warnings and errors are always written.</summary>
    public bool Verbose { get; } = verbose;

    public void Info(string message)
    {
        if (Verbose)
        {
            Write("info", message);
        }
    }

    public void Warn(string message) => Write("warn", message);

    public void Error(string message) => Write("fail", message);

    private void Write(string level, string message)
    {
        lock (_gate)
        {
            _output.WriteLine($"{DateTime.Now:HH:mm:ss.fff} {level} {message}");
            _output.Flush();
        }
    }
}
