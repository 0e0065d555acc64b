using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text.Unicode;

namespace FastRelay.Transport.WebSockets;

/// <summary>Parses client-to-server RFC 6455 frames into messages, one reader per connection.</summary>
/// <remarks>
/// Data payloads are consumed from the input as they arrive and unmasked into a buffer rented from
/// <see cref="ArrayPool{T}.Shared"/>, so the input is left holding at most a partial header or one partial control
/// frame (131 bytes) and the connection's receive buffer need not grow to the message limit. The buffer is rented only while a message is being read and
/// given back once a read finds no more input with no message in progress: an idle connection holds none.
/// Control payloads (at most 125 bytes) are parsed only once whole and unmasked into a small buffer of their own (created by the first one),
/// so a ping between fragments leaves the message being assembled untouched.
/// </remarks>
public sealed class WebSocketMessageReader : IDisposable
{
    // 2-byte header + 8-byte extended length + 4-byte masking key.
    private const int MaxClientHeaderSize = 14;
    private const int MaxControlPayload = 125;

    // The first rent for a large frame is capped so that a declared length alone cannot pin a large buffer:
    // the buffer grows (doubling) as payload bytes actually arrive.
    private const int InitialRentCap = 64 * 1024;

    // Bit per opcode this reader accepts: 0, 1, 2, 8, 9, 10; the rest are reserved (§5.2).
    private const int DefinedOpcodes = 0b0000_0111_0000_0111;

    private readonly int _maxMessageBytes;
    // Created by the first control frame: most connections never send one.
    private byte[]? _control;

    private byte[]? _buffer;

    // The data message being assembled: its opcode (Continuation = none) and the bytes unmasked so far.
    private WebSocketOpcode _messageOpcode;
    private int _messageLength;

    // The data frame whose payload is being consumed.
    private bool _inPayload;
    private bool _frameFin;
    private int _frameRemaining;
    private uint _frameKey;
    private int _frameKeyOffset;

    // After a close or a protocol error the reader answers the same result forever.
    private WebSocketReadStatus _terminalStatus;
    private WebSocketMessage _terminalMessage;
    private bool _disposed;

    public WebSocketMessageReader(int maxMessageBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxMessageBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxMessageBytes, Array.MaxLength);
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>The largest data message accepted, in bytes; larger ones fail with 1009.</summary>
    public int MaxMessageBytes => _maxMessageBytes;

    /// <summary>Whether the reader holds a pooled buffer (a message in progress or just returned).</summary>
    internal bool HoldsBuffer => _buffer is not null;

    /// <summary>The size of the pooled buffer, 0 when none is held.</summary>
    internal int BufferCapacity => _buffer?.Length ?? 0;

    /// <summary>
    /// Reads from the front of <paramref name="buffer"/> until a message, a control frame or an error is found,
    /// advancing <paramref name="buffer"/> past what was consumed. The previous result's payload becomes invalid.
    /// </summary>
    public WebSocketReadStatus TryRead(ref ReadOnlySequence<byte> buffer, out WebSocketMessage message)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_terminalStatus != WebSocketReadStatus.NeedMoreData)
        {
            message = _terminalMessage;
            return _terminalStatus;
        }

        while (true)
        {
            if (_inPayload)
            {
                if (!TryConsumePayload(ref buffer))
                {
                    message = default;
                    return WebSocketReadStatus.NeedMoreData;
                }

                if (_frameFin)
                {
                    return CompleteMessage(out message);
                }

                continue;
            }

            FrameResult result = TryReadHeader(buffer, out FrameHeader header);
            if (result == FrameResult.NeedMoreData)
            {
                ReleaseBufferIfIdle();
                message = default;
                return WebSocketReadStatus.NeedMoreData;
            }

            if (result != FrameResult.Complete)
            {
                return Fail(result, out message);
            }

            if (header.IsControl)
            {
                long frameLength = header.HeaderLength + (long)header.PayloadLength;
                if (buffer.Length < frameLength)
                {
                    ReleaseBufferIfIdle();
                    message = default;
                    return WebSocketReadStatus.NeedMoreData;
                }

                int payloadLength = (int)header.PayloadLength;
                WebSocketMask.Apply(buffer.Slice(header.HeaderLength, payloadLength), _control ??= new byte[MaxControlPayload], header.Key, 0);
                buffer = buffer.Slice(frameLength);
                return ReadControl(header.Opcode, payloadLength, out message);
            }

            result = StartDataFrame(header);
            if (result != FrameResult.Complete)
            {
                return Fail(result, out message);
            }

            buffer = buffer.Slice(header.HeaderLength);
        }
    }

    /// <summary>Returns the pooled buffer; the reader cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        ReleaseBuffer();
    }

    private static FrameResult TryReadHeader(in ReadOnlySequence<byte> buffer, out FrameHeader header)
    {
        header = default;
        Span<byte> copy = stackalloc byte[MaxClientHeaderSize];
        scoped ReadOnlySpan<byte> span = buffer.FirstSpan;
        if (span.Length < MaxClientHeaderSize && buffer.Length > span.Length)
        {
            // The header straddles segments: gather what there is of it.
            int available = (int)Math.Min(buffer.Length, MaxClientHeaderSize);
            buffer.Slice(0, available).CopyTo(copy);
            span = copy[..available];
        }

        if (span.Length < 2)
        {
            return FrameResult.NeedMoreData;
        }

        byte first = span[0];
        byte second = span[1];
        int opcode = first & 0x0F;
        int length7 = second & 0x7F;

        // No extension was negotiated, so no RSV bit may be set (§5.2).
        if ((first & 0x70) != 0)
        {
            return FrameResult.ReservedBits;
        }

        if (((1 << opcode) & DefinedOpcodes) == 0)
        {
            return FrameResult.ReservedOpcode;
        }

        // §5.1: a server must close the connection on an unmasked client frame.
        if ((second & 0x80) == 0)
        {
            return FrameResult.Unmasked;
        }

        bool fin = (first & 0x80) != 0;
        bool control = (opcode & 0x8) != 0;
        if (control && (!fin || length7 > MaxControlPayload))
        {
            return FrameResult.InvalidControlFrame;
        }

        int extended = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
        int headerLength = 2 + extended + 4;
        if (span.Length < headerLength)
        {
            return FrameResult.NeedMoreData;
        }

        ulong payloadLength = extended switch
        {
            0 => (ulong)length7,
            2 => BinaryPrimitives.ReadUInt16BigEndian(span[2..]),
            _ => BinaryPrimitives.ReadUInt64BigEndian(span[2..]),
        };

        // §5.2: the most significant bit of a 64-bit length must be 0.
        if ((long)payloadLength < 0)
        {
            return FrameResult.LengthTopBitSet;
        }

        header = new FrameHeader((WebSocketOpcode)opcode, fin, headerLength, payloadLength, WebSocketMask.ReadKey(span[(headerLength - 4)..]));
        return FrameResult.Complete;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private FrameResult StartDataFrame(in FrameHeader header)
    {
        bool inMessage = _messageOpcode != WebSocketOpcode.Continuation;
        if (header.Opcode == WebSocketOpcode.Continuation)
        {
            if (!inMessage)
            {
                return FrameResult.UnexpectedContinuation;
            }
        }
        else if (inMessage)
        {
            return FrameResult.MessageInterleaved;
        }

        // Checked on the header alone, before any of the payload is buffered.
        if (header.PayloadLength > (ulong)(_maxMessageBytes - _messageLength))
        {
            return FrameResult.MessageTooBig;
        }

        if (!inMessage)
        {
            _messageOpcode = header.Opcode;
        }

        _inPayload = true;
        _frameFin = header.Fin;
        _frameRemaining = (int)header.PayloadLength;
        _frameKey = header.Key;
        _frameKeyOffset = 0;
        return FrameResult.Complete;
    }

    /// <summary>Unmasks what there is of the current frame's payload; returns whether the frame is complete.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryConsumePayload(ref ReadOnlySequence<byte> buffer)
    {
        if (_frameRemaining != 0)
        {
            int take = (int)Math.Min(_frameRemaining, buffer.Length);
            if (take == 0)
            {
                return false;
            }

            int required = _messageLength + take;
            if (_buffer is null || _buffer.Length < required)
            {
                Grow(required, _messageLength + _frameRemaining);
            }

            ReadOnlySequence<byte> chunk = buffer.Slice(0, take);
            _frameKeyOffset = WebSocketMask.Apply(chunk, _buffer.AsSpan(_messageLength), _frameKey, _frameKeyOffset);
            buffer = buffer.Slice(chunk.End);
            _messageLength = required;
            _frameRemaining -= take;
            if (_frameRemaining != 0)
            {
                return false;
            }
        }

        _inPayload = false;
        return true;
    }

    /// <summary>Ends the message after its final frame.</summary>
    private WebSocketReadStatus CompleteMessage(out WebSocketMessage message)
    {
        WebSocketOpcode opcode = _messageOpcode;
        int length = _messageLength;
        _messageOpcode = WebSocketOpcode.Continuation;
        _messageLength = 0;

        ReadOnlyMemory<byte> payload = length == 0 ? ReadOnlyMemory<byte>.Empty : _buffer.AsMemory(0, length);

        // Validated over the whole message: a character may be split across fragments (§5.6, §8.1).
        if (opcode == WebSocketOpcode.Text && !Utf8.IsValid(payload.Span))
        {
            return Fail(FrameResult.InvalidUtf8, out message);
        }

        message = WebSocketMessage.Data(opcode, payload);
        return WebSocketReadStatus.Message;
    }

    private WebSocketReadStatus ReadControl(WebSocketOpcode opcode, int payloadLength, out WebSocketMessage message)
    {
        ReadOnlyMemory<byte> payload = _control!.AsMemory(0, payloadLength);
        switch (opcode)
        {
            case WebSocketOpcode.Ping:
                message = WebSocketMessage.Control(WebSocketOpcode.Ping, payload);
                return WebSocketReadStatus.Ping;
            case WebSocketOpcode.Pong:
                message = WebSocketMessage.Control(WebSocketOpcode.Pong, payload);
                return WebSocketReadStatus.Pong;
            default:
                return ReadClose(payload, out message);
        }
    }

    private WebSocketReadStatus ReadClose(ReadOnlyMemory<byte> body, out WebSocketMessage message)
    {
        ushort code = WebSocketCloseCode.NoStatusReceived;
        if (body.Length == 1)
        {
            return Fail(FrameResult.CloseBodyTooShort, out message);
        }

        if (body.Length >= 2)
        {
            code = BinaryPrimitives.ReadUInt16BigEndian(body.Span);
            if (!WebSocketCloseCode.IsValid(code))
            {
                return Fail(FrameResult.InvalidCloseCode, out message);
            }

            if (!Utf8.IsValid(body.Span[2..]))
            {
                return Fail(FrameResult.InvalidCloseReason, out message);
            }
        }

        message = WebSocketMessage.Control(WebSocketOpcode.Close, body, code);
        return Terminate(WebSocketReadStatus.Close, message);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private WebSocketReadStatus Fail(FrameResult error, out WebSocketMessage message)
    {
        (ushort code, string reason) = error switch
        {
            FrameResult.ReservedBits => (WebSocketCloseCode.ProtocolError, "RSV bits set without a negotiated extension"),
            FrameResult.ReservedOpcode => (WebSocketCloseCode.ProtocolError, "Reserved opcode"),
            FrameResult.Unmasked => (WebSocketCloseCode.ProtocolError, "Client frames must be masked"),
            FrameResult.InvalidControlFrame => (WebSocketCloseCode.ProtocolError, "Control frames must be final and at most 125 bytes"),
            FrameResult.LengthTopBitSet => (WebSocketCloseCode.ProtocolError, "64-bit payload length has its top bit set"),
            FrameResult.UnexpectedContinuation => (WebSocketCloseCode.ProtocolError, "Continuation frame without a message in progress"),
            FrameResult.MessageInterleaved => (WebSocketCloseCode.ProtocolError, "New data frame while a fragmented message is in progress"),
            FrameResult.CloseBodyTooShort => (WebSocketCloseCode.ProtocolError, "Close frame body of 1 byte"),
            FrameResult.InvalidCloseCode => (WebSocketCloseCode.ProtocolError, "Invalid close code"),
            FrameResult.MessageTooBig => (WebSocketCloseCode.MessageTooBig, "Message exceeds the size limit"),
            FrameResult.InvalidUtf8 => (WebSocketCloseCode.InvalidPayload, "Text message is not valid UTF-8"),
            FrameResult.InvalidCloseReason => (WebSocketCloseCode.InvalidPayload, "Close reason is not valid UTF-8"),
            _ => (WebSocketCloseCode.InternalError, "Unexpected reader state"),
        };

        message = WebSocketMessage.Failure(code, reason);
        return Terminate(WebSocketReadStatus.ProtocolError, message);
    }

    private WebSocketReadStatus Terminate(WebSocketReadStatus status, in WebSocketMessage message)
    {
        // The connection is ending: no message will be completed, and a close payload lives in _control.
        ReleaseBuffer();
        _inPayload = false;
        _messageOpcode = WebSocketOpcode.Continuation;
        _messageLength = 0;
        _terminalStatus = status;
        _terminalMessage = message;
        return status;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    [MemberNotNull(nameof(_buffer))]
    private void Grow(int required, int frameEnd)
    {
        // Double up to what the frame has declared, never below what is needed now.
        int current = _buffer?.Length ?? 0;
        int doubled = (int)Math.Min((long)current * 2, Array.MaxLength);
        int target = Math.Max(required, Math.Min(frameEnd, Math.Max(InitialRentCap, doubled)));

        byte[] next = ArrayPool<byte>.Shared.Rent(target);
        if (_buffer is not null)
        {
            _buffer.AsSpan(0, _messageLength).CopyTo(next);
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = next;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ReleaseBufferIfIdle()
    {
        if (_buffer is not null && !_inPayload && _messageOpcode == WebSocketOpcode.Continuation)
        {
            ReleaseBuffer();
        }
    }

    private void ReleaseBuffer()
    {
        byte[]? buffer = _buffer;
        if (buffer is not null)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private enum FrameResult : byte
    {
        Complete,
        NeedMoreData,
        ReservedBits,
        ReservedOpcode,
        Unmasked,
        InvalidControlFrame,
        LengthTopBitSet,
        UnexpectedContinuation,
        MessageInterleaved,
        MessageTooBig,
        InvalidUtf8,
        CloseBodyTooShort,
        InvalidCloseCode,
        InvalidCloseReason,
    }

    private readonly struct FrameHeader(WebSocketOpcode opcode, bool fin, int headerLength, ulong payloadLength, uint key)
    {
        public WebSocketOpcode Opcode { get; } = opcode;

        public bool Fin { get; } = fin;

        public bool IsControl => ((int)Opcode & 0x8) != 0;

        /// <summary>Header bytes, masking key included.</summary>
        public int HeaderLength { get; } = headerLength;

        public ulong PayloadLength { get; } = payloadLength;

        public uint Key { get; } = key;
    }
}
