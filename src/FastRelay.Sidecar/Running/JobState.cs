using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using MessagePack;

namespace FastRelay.Sidecar.Running;

/// <summary>Where a job stands, as kept in the relay's KV store under <see cref="JobKeys.For"/>.</summary>
internal enum JobPhase
{
    /// <summary>A worker owns the job and is calling the model (its lease: see <see cref="JobLedger"/>).</summary>
    Running,

    /// <summary>The final event is decided (<see cref="JobState.Final"/>) and being published; whoever finds the job in
    /// this phase publishes that same final again (deduplicated by the relay) instead of running the model.</summary>
    Final,

    /// <summary>The final event was published and acknowledged; a redelivered job is only acknowledged.</summary>
    Done,
}

/// <summary>
/// A job's state record: MessagePack map <c>{"phase", "owner", "attempt", "emitted", "final"?}</c>. <c>owner</c> is the
/// worker process (unique per sidecar run), <c>attempt</c> counts the workers that started the job, <c>emitted</c> the
/// partial events the owner had published at its last lease renewal, <c>final</c> the final event's payload.
/// </summary>
internal sealed record JobState(JobPhase Phase, string Owner, int Attempt, int Emitted, byte[]? Final = null)
{
    public byte[] Encode()
    {
        var buffer = new ArrayBufferWriter<byte>(64 + (Final?.Length ?? 0));
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(Final is null ? 4 : 5);
        w.Write("phase");
        w.Write(Phase switch { JobPhase.Running => "running", JobPhase.Final => "final", _ => "done" });
        w.Write("owner");
        w.Write(Owner);
        w.Write("attempt");
        w.Write(Attempt);
        w.Write("emitted");
        w.Write(Emitted);
        if (Final is not null)
        {
            w.Write("final");
            w.Write(Final);
        }

        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public static bool TryDecode(ReadOnlyMemory<byte> value, [NotNullWhen(true)] out JobState? state)
    {
        state = null;
        try
        {
            var reader = new MessagePackReader(value);
            int count = reader.ReadMapHeader();
            JobPhase? phase = null;
            string? owner = null;
            int attempt = 0, emitted = 0;
            byte[]? final = null;
            for (int i = 0; i < count; i++)
            {
                switch (reader.ReadString())
                {
                    case "phase":
                        phase = reader.ReadString() switch
                        {
                            "running" => JobPhase.Running,
                            "final" => JobPhase.Final,
                            "done" => JobPhase.Done,
                            _ => null,
                        };
                        break;
                    case "owner":
                        owner = reader.ReadString();
                        break;
                    case "attempt":
                        attempt = reader.ReadInt32();
                        break;
                    case "emitted":
                        emitted = reader.ReadInt32();
                        break;
                    case "final":
                        final = reader.ReadBytes()?.ToArray();
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (phase is null || owner is null || (phase == JobPhase.Final && final is null))
            {
                return false;
            }

            state = new JobState(phase.Value, owner, attempt, emitted, final);
            return true;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException)
        {
            return false;
        }
    }
}
