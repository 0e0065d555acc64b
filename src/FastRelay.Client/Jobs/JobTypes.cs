namespace FastRelay.Client.Jobs;

/// <summary>A job for an agent: the input text, and where the reply streams.</summary>
/// <param name="Input">What the agent works on (rendered into its prompt template).</param>
public sealed record JobRequest(string Input)
{
    /// <summary>The job's id; the agent uses the PUB's message_id, else the event's <c>topic@epoch:seq</c>, when null.</summary>
    public string? Id { get; init; }

    /// <summary>The topic that receives the reply stream (partials, then one final event); none when null.</summary>
    public string? ReplyTopic { get; init; }
}

/// <summary>One event of a job's reply stream (<see cref="JobWire.TryDecodeReply"/>).</summary>
/// <param name="JobId">The job the event belongs to (the event's <c>prev_event_id</c>).</param>
public abstract record JobUpdate(string JobId);

/// <summary>New text of the reply, as it streams.</summary>
/// <param name="Coalesced">The relay merged several partials for a slow reader; <paramref name="Text"/> is all of them.</param>
public sealed record JobToken(string JobId, string Text, bool Coalesced) : JobUpdate(JobId);

/// <summary>The worker that was streaming the job was lost; another one starts the reply again from the beginning.</summary>
/// <param name="Attempt">The new attempt's number (2 for the first restart).</param>
public sealed record JobRestarted(string JobId, int Attempt, string Reason) : JobUpdate(JobId);

/// <summary>The job's one final event.</summary>
/// <param name="Text">The whole reply; when <see cref="Degraded"/>, what the model produced before it failed.</param>
public sealed record JobResult(string JobId, string Text) : JobUpdate(JobId)
{
    /// <summary>"adapter:model" that produced the text (or the last one tried).</summary>
    public string? Model { get; init; }

    /// <summary>Model calls made, retries and fallbacks included.</summary>
    public int Attempts { get; init; }

    /// <summary>The model did not finish (timeout, stall, error): <see cref="Text"/> is partial.</summary>
    public bool Degraded { get; init; }

    /// <summary>Why it is degraded: <c>timeout</c>, <c>stalled</c>, <c>error</c>, <c>invalid_job</c>; null when it is not.</summary>
    public string? Reason { get; init; }

    /// <summary>The last failure, when degraded.</summary>
    public string? Error { get; init; }

    /// <summary>The model's finish reason (<c>stop</c>, <c>length</c>, ...) when it finished.</summary>
    public string? FinishReason { get; init; }

    /// <summary>The agent that answered.</summary>
    public string? Agent { get; init; }
}

/// <summary>Options of <see cref="FastRelayClient.SubmitJobAsync"/>.</summary>
public sealed class JobSubmitOptions
{
    /// <summary>The job's id, also the PUB's message_id (idempotent: submitting the same id twice runs the job once
    /// within the relay's dedup window). A new GUID when null.</summary>
    public string? JobId { get; init; }

    /// <summary>The topic for the reply stream; <c>replies.{job id}</c> when null. The client subscribes to it first.</summary>
    public string? ReplyTopic { get; init; }

    /// <summary>
    /// An ordering key (e.g. a conversation id): the agents' group runs jobs with the same key one at a time, in the
    /// order they were submitted (<see cref="PublishOptions.Key"/>); jobs of other keys run in parallel.
    /// </summary>
    public string? Key { get; init; }
}
