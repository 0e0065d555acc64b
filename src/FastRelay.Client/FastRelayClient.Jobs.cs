using System.Runtime.CompilerServices;
using FastRelay.Client.Jobs;

namespace FastRelay.Client;

public sealed partial class FastRelayClient
{
    /// <summary>
    /// Submits a job to the agents consuming <paramref name="topic"/> and streams its reply: <see cref="JobToken"/>s as the
    /// model produces text, a <see cref="JobRestarted"/> if the worker was lost and another one starts over, and the one
    /// <see cref="JobResult"/>, after which the stream ends. Subscribes to the reply topic before it publishes, so no
    /// token is missed; the job's PUB carries the job id as its message_id, so a retried submit is not run twice.
    /// Bound the wait with <paramref name="ct"/>: a job nobody consumes produces nothing.
    /// </summary>
    /// <exception cref="FastRelayBackoffException">The agents' queue is full (the relay pushed back) after the client's publish retries.</exception>
    /// <exception cref="FastRelayException">The relay refused the subscribe or the publish (e.g. 403).</exception>
    /// <exception cref="InvalidDataException">A reply event could not be read (not the job protocol).</exception>
    public async IAsyncEnumerable<JobUpdate> SubmitJobAsync(string topic, string input, JobSubmitOptions? options = null,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ValidateTopic(topic);
        string jobId = options?.JobId ?? Guid.NewGuid().ToString("N");
        string replyTopic = options?.ReplyTopic ?? $"replies.{jobId}";
        ValidateTopic(replyTopic);

        var subscription = await SubscribeAsync(replyTopic, new SubscribeOptions { RepairGaps = false }, ct).ConfigureAwait(false);
        try
        {
            byte[] job = JobWire.EncodeRequest(new JobRequest(input) { Id = jobId, ReplyTopic = replyTopic });
            PublishAck ack = await PublishJobAsync(topic, job, new PublishOptions { MessageId = jobId, Key = options?.Key }, ct).ConfigureAwait(false);
            if (ack.IsDuplicate)
            {
                // Submitted before (a retry): the reply may have streamed already. Replay the reply topic from its start
                // (the relay's retention window), then follow it live.
                ulong epoch = subscription.Epoch;
                await subscription.DisposeAsync().ConfigureAwait(false);
                subscription = await SubscribeAsync(replyTopic,
                    new SubscribeOptions { RepairGaps = false, ResumeFrom = new StreamPosition(epoch, 0) }, ct).ConfigureAwait(false);
            }

            await foreach (var e in subscription.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (e.PrevEventId is { } id && id != jobId)
                {
                    continue; // a shared reply topic: another job's stream
                }

                if (!JobWire.TryDecodeReply(e, out var update, out string? error))
                {
                    throw new InvalidDataException($"reply event {e} of job {jobId}: {error}");
                }

                yield return update;
                if (update is JobResult)
                {
                    yield break;
                }
            }
        }
        finally
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Publishes the job; when the connection drops before the ACK and the client reconnects, publishes it again with
    /// the same message id (the relay's dedup makes that safe: a job that did get in is ACKed as a duplicate).
    /// </summary>
    private async Task<PublishAck> PublishJobAsync(string topic, byte[] job, PublishOptions options, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await PublishAsync(topic, job, options, ct).ConfigureAwait(false);
            }
            catch (FastRelayConnectionException) when (attempt < 3 && _options.Reconnect.Enabled && !ct.IsCancellationRequested)
            {
                await WaitUntilConnectedAsync(ct).ConfigureAwait(false);
            }
        }
    }
}