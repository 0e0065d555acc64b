namespace FastRelay.Protocol;

/// <summary>Hard wire limits. Servers may configure lower ones; never higher.</summary>
public static class ProtocolLimits
{
    /// <summary>Current protocol version (field 17 of HELLO/WELCOME).</summary>
    public const uint Version = 1;

    /// <summary>Longest topic name, in UTF-8 bytes.</summary>
    public const int MaxTopicBytes = 256;

    /// <summary>Longest client_id, message_id, prev_event_id, group, tenant, node, in UTF-8 bytes.</summary>
    public const int MaxIdBytes = 128;

    /// <summary>Longest ordering key (field 21), in UTF-8 bytes.</summary>
    public const int MaxKeyBytes = 256;

    /// <summary>Longest reason string, in UTF-8 bytes.</summary>
    public const int MaxReasonBytes = 1024;

    /// <summary>Longest token, in bytes.</summary>
    public const int MaxTokenBytes = 4096;

    /// <summary>Default largest envelope accepted (1 MiB); configurable per server, never above <see cref="AbsoluteMaxMessageBytes"/>.</summary>
    public const int DefaultMaxMessageBytes = 1 << 20;

    /// <summary>Largest envelope any peer may send (16 MiB).</summary>
    public const int AbsoluteMaxMessageBytes = 16 << 20;
}
