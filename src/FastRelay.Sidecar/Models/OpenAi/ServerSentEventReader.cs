using System.Buffers;
using System.IO.Pipelines;

namespace FastRelay.Sidecar.Models.OpenAi;

/// <summary>Reads Server-Sent Events from a response body one event at a time, never buffering more than one event.</summary>
/// <remarks>
/// Follows the WHATWG event-stream grammar: lines end in CRLF, LF or CR; a blank line dispatches the event; lines
/// starting with ':' are comments (keep-alives); several <c>data:</c> lines join with '\n'. Unlike the browser, an
/// event still pending when the body ends is dispatched, so a server that closes right after <c>data: [DONE]</c>
/// without the blank line is read correctly. Every line and event is bounded by <c>maxEventBytes</c>.
/// </remarks>
internal sealed class ServerSentEventReader : IAsyncDisposable
{
    public const int DefaultMaxEventBytes = 1 << 20;

    private readonly PipeReader _reader;
    private readonly int _maxEventBytes;
    private readonly ArrayBufferWriter<byte> _data = new(1024);
    private byte[]? _scratch;
    private bool _hasData;
    private bool _ended;

    public ServerSentEventReader(Stream stream, int maxEventBytes = DefaultMaxEventBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEventBytes, 16);
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: false));
        _maxEventBytes = maxEventBytes;
    }

    /// <summary>The data of the event last returned by <see cref="ReadEventAsync"/>; valid until the next call.</summary>
    public ReadOnlySpan<byte> Data => _data.WrittenSpan;

    /// <summary>The <c>event:</c> field of the event last returned, or null when it had none.</summary>
    public string? EventType { get; private set; }

    /// <summary>Reads the next event that carries data; false when the body has ended.</summary>
    public async ValueTask<bool> ReadEventAsync(CancellationToken ct)
    {
        _data.ResetWrittenCount();
        _hasData = false;
        EventType = null;
        while (!_ended)
        {
            ReadResult result = await _reader.ReadAsync(ct).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            if (ParseLines(ref buffer, result.IsCompleted))
            {
                // The rest of the buffer is not examined yet: the next read must look at it before waiting for more.
                _reader.AdvanceTo(buffer.Start);
                return true;
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);

            if (result.IsCompleted)
            {
                _ended = true;
                return _hasData;
            }
        }

        return false;
    }

    public ValueTask DisposeAsync() => _reader.CompleteAsync();

    /// <summary>Consumes whole lines from <paramref name="buffer"/>; true when a blank line dispatched an event.</summary>
    private bool ParseLines(ref ReadOnlySequence<byte> buffer, bool isCompleted)
    {
        var reader = new SequenceReader<byte>(buffer);
        while (true)
        {
            SequencePosition lineStart = reader.Position;
            if (!reader.TryReadToAny(out ReadOnlySequence<byte> line, "\r\n"u8, advancePastDelimiter: false))
            {
                if (isCompleted && !reader.End)
                {
                    // The body ended inside a line: take it as the last line.
                    ProcessLine(reader.UnreadSequence);
                    reader.AdvanceToEnd();
                }
                else if (reader.Remaining > _maxEventBytes)
                {
                    ThrowTooLarge();
                }

                buffer = buffer.Slice(reader.Position);
                return false;
            }

            reader.TryRead(out byte delimiter);
            if (delimiter == (byte)'\r')
            {
                if (reader.End && !isCompleted)
                {
                    // A CR at the end of what has arrived: wait to see whether LF follows, so CRLF is one line end.
                    buffer = buffer.Slice(lineStart);
                    return false;
                }

                reader.IsNext((byte)'\n', advancePast: true);
            }

            if (ProcessLine(line))
            {
                buffer = buffer.Slice(reader.Position);
                return true;
            }
        }
    }

    /// <summary>Applies one line to the pending event; true when it is the blank line that dispatches a non-empty event.</summary>
    private bool ProcessLine(in ReadOnlySequence<byte> lineSequence)
    {
        if (lineSequence.IsEmpty)
        {
            if (!_hasData)
            {
                EventType = null;
            }

            return _hasData;
        }

        if (lineSequence.Length > _maxEventBytes)
        {
            ThrowTooLarge();
        }

        ReadOnlySpan<byte> line = Flatten(lineSequence);
        if (line[0] == (byte)':')
        {
            return false;
        }

        int colon = line.IndexOf((byte)':');
        ReadOnlySpan<byte> field = colon < 0 ? line : line[..colon];
        ReadOnlySpan<byte> value = colon < 0 ? default : line[(colon + 1)..];
        if (!value.IsEmpty && value[0] == (byte)' ')
        {
            value = value[1..];
        }

        if (field.SequenceEqual("data"u8))
        {
            int needed = value.Length + (_hasData ? 1 : 0);
            if (_data.WrittenCount + needed > _maxEventBytes)
            {
                ThrowTooLarge();
            }

            if (_hasData)
            {
                _data.Write("\n"u8);
            }

            _data.Write(value);
            _hasData = true;
        }
        else if (field.SequenceEqual("event"u8))
        {
            EventType = System.Text.Encoding.UTF8.GetString(value);
        }

        // id:, retry: and unknown fields mean nothing to a one-shot completion stream.
        return false;
    }

    private ReadOnlySpan<byte> Flatten(in ReadOnlySequence<byte> sequence)
    {
        if (sequence.IsSingleSegment)
        {
            return sequence.FirstSpan;
        }

        int length = (int)sequence.Length;
        if (_scratch is null || _scratch.Length < length)
        {
            _scratch = new byte[Math.Max(length, 256)];
        }

        sequence.CopyTo(_scratch);
        return _scratch.AsSpan(0, length);
    }

    private void ThrowTooLarge() =>
        throw new ModelException(ModelFailureKind.Permanent, $"malformed event stream: an event is larger than {_maxEventBytes} bytes");
}
