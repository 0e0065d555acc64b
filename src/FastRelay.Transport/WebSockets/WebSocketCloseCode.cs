using System.Runtime.CompilerServices;

namespace FastRelay.Transport.WebSockets;

/// <summary>RFC 6455 §7.4 close status codes used by the relay.</summary>
public static class WebSocketCloseCode
{
    public const ushort NormalClosure = 1000;
    public const ushort GoingAway = 1001;
    public const ushort ProtocolError = 1002;
    public const ushort UnsupportedData = 1003;

    /// <summary>Reported by the reader for a close frame without a body; never sent on the wire (§7.4.1).</summary>
    public const ushort NoStatusReceived = 1005;

    public const ushort InvalidPayload = 1007;
    public const ushort PolicyViolation = 1008;
    public const ushort MessageTooBig = 1009;
    public const ushort InternalError = 1011;
    public const ushort TryAgainLater = 1013;

    /// <summary>
    /// Whether <paramref name="code"/> may appear in a close frame: the defined codes 1000-1003 and 1007-1014,
    /// or the registered/private range 3000-4999. 1004-1006 and 1015 are reserved for local reporting.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsValid(ushort code) =>
        code is (>= 1000 and <= 1003) or (>= 1007 and <= 1014) or (>= 3000 and <= 4999);
}
