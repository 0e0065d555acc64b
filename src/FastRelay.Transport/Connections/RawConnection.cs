using System.Buffers;
using System.Net.Sockets;
using FastRelay.Core.Sessions;
using FastRelay.Protocol;

namespace FastRelay.Transport.Connections;

/// <summary>Raw TCP or Unix-socket connection: each envelope behind a 4-byte big-endian length.</summary>
internal sealed class RawConnection : Connection
{
    public RawConnection(Socket socket, Session session, TransportContext context)
        : base(socket, session, context)
    {
    }

    protected override int MaxBufferedBytes => RawFraming.HeaderSize + MaxMessageBytes;

    protected override FrameOutcome TryHandleNext(ref ReadOnlySequence<byte> buffer)
    {
        var status = RawFraming.TryRead(ref buffer, MaxMessageBytes, out var body, out uint declared);
        bool open = status switch
        {
            RawFrameStatus.Incomplete => true,
            RawFrameStatus.Complete => Deliver(in body),
            RawFrameStatus.TooLarge => Reject(ErrorCode.TooLarge, $"frame of {declared} bytes exceeds the limit of {MaxMessageBytes} bytes", SessionCloseKind.MessageTooBig),
            _ => Reject(ErrorCode.BadFrame, "zero-length frame", SessionCloseKind.ProtocolError),
        };
        return !open ? FrameOutcome.Stop : status == RawFrameStatus.Incomplete ? FrameOutcome.NeedMoreData : FrameOutcome.Handled;
    }

    private bool Reject(ErrorCode code, string reason, SessionCloseKind kind)
    {
        Session.Reject(code, reason, kind);
        return false;
    }

    protected override int HeaderSize(int bodyLength) => RawFraming.HeaderSize;

    protected override void WriteHeader(Span<byte> destination, int bodyLength) => RawFraming.WriteHeader(destination, bodyLength);
}
