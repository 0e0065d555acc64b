namespace FastRelay.LoadGen.Targets;

/// <summary>A server and the wire protocol the simulated clients speak to it.</summary>
internal enum TargetKind
{
    FastRelayWebSocket,
    FastRelayTcp,
    Redis,
}

internal static class TargetKinds
{
    public static string Name(this TargetKind kind) => kind switch
    {
        TargetKind.FastRelayWebSocket => "fastrelay-ws",
        TargetKind.FastRelayTcp => "fastrelay-tcp",
        _ => "redis",
    };

    public static bool IsFastRelay(this TargetKind kind) => kind != TargetKind.Redis;

    public static TargetKind? Parse(string name) => name switch
    {
        "fastrelay-ws" => TargetKind.FastRelayWebSocket,
        "fastrelay-tcp" => TargetKind.FastRelayTcp,
        "redis" => TargetKind.Redis,
        _ => null,
    };
}
