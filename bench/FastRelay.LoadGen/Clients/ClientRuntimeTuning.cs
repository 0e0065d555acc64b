using System.Diagnostics;

namespace FastRelay.LoadGen.Clients;

/// <summary>
/// Runtime settings that keep the load generator's own CPU low on a small box, applied to this process only.
/// Socket completions run inline on the epoll thread (each continuation is a short parse, never blocking), so
/// a receive costs no thread-pool hand-off; measured on the 2-core box: client CPU for the latency scenario
/// went from ~3.1 s to ~1.1 s per 4 s run. The thread pool's idle spinning is off through the runtimeconfig
/// (FastRelay.LoadGen.csproj). The servers under test never inherit any of this: see <see cref="RestoreFor"/>.
/// </summary>
internal static class ClientRuntimeTuning
{
    private const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    private static readonly Dictionary<string, string?> s_original = new(StringComparer.Ordinal);

    /// <summary>Call first thing in Main: the socket engine reads the variable once, on first use.</summary>
    public static void Apply()
    {
        string? current = Environment.GetEnvironmentVariable(InlineCompletions);
        s_original[InlineCompletions] = current;
        if (current is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletions, "1");
        }
    }

    /// <summary>Gives a child process the environment this process started with.</summary>
    public static void RestoreFor(ProcessStartInfo start)
    {
        foreach (var (name, value) in s_original)
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }
    }

    public static string Describe() =>
        $"{InlineCompletions}={Environment.GetEnvironmentVariable(InlineCompletions) ?? "unset"} (client only), thread-pool spin limit 0 (client only)";
}
