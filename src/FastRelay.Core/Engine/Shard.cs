using System.Diagnostics;
using System.Runtime.CompilerServices;
using FastRelay.Core.Sessions;
using FastRelay.Core.Threading;
using FastRelay.Protocol;

namespace FastRelay.Core.Engine;

/// <summary>
/// Owns the topics whose (tenant, topic) hash maps to it, on one dedicated thread: seq assignment, subscriber
/// lists and fan-out happen here without locks. Work arrives through a bounded lock-free MPSC inbox.
/// </summary>
internal sealed class Shard : IDisposable
{
    private const int SpinsBeforePark = 64;

    private readonly RelayEngine _engine;
    private readonly MpscRing<ShardCommand> _inbox;
    private readonly Dictionary<TopicKey, TopicStream> _topics = new(TopicKeyComparer.Instance);
    private readonly Dictionary<TopicKey, TopicStream>.AlternateLookup<TopicRef> _lookup;
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private readonly Thread _thread;
    private volatile bool _stopping;
    private int _parked;
    private ulong _lastEpoch;
    private long _published;
    private long _delivered;

    public Shard(RelayEngine engine, int index, int inboxCapacity)
    {
        _engine = engine;
        Index = index;
        _inbox = new MpscRing<ShardCommand>(inboxCapacity);
        _lookup = _topics.GetAlternateLookup<TopicRef>();
        _thread = new Thread(Run) { IsBackground = true, Name = $"fastrelay-shard-{index}" };
    }

    public int Index { get; }

    public int TopicCount => Volatile.Read(ref _topicCount);

    public long Published => Volatile.Read(ref _published);

    public long Delivered => Volatile.Read(ref _delivered);

    /// <summary>Bytes allocated by this shard's thread so far (read by tests and metrics via <see cref="Invoke"/>).</summary>
    public long AllocatedBytes => GC.GetAllocatedBytesForCurrentThread();

    private int _topicCount;

    public void Start() => _thread.Start();

    /// <summary>Hands a command to the shard. False when the inbox is full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPost(in ShardCommand command)
    {
        if (!_inbox.TryEnqueue(command))
        {
            return false;
        }

        if (Volatile.Read(ref _parked) != 0 && Interlocked.Exchange(ref _parked, 0) != 0)
        {
            _wake.Release();
        }

        return true;
    }

    /// <summary>Hands a command that must not be lost (subscription changes): waits while the inbox is full.</summary>
    public void Post(in ShardCommand command)
    {
        var spin = new SpinWait();
        while (!TryPost(command))
        {
            if (_stopping)
            {
                return;
            }

            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Runs <paramref name="action"/> on the shard thread and waits for it (cold path).</summary>
    public Task InvokeAsync(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new ShardCommand
        {
            Kind = ShardCommandKind.Invoke,
            Action = () =>
            {
                try
                {
                    action();
                    done.SetResult();
                }
                catch (Exception ex)
                {
                    done.SetException(ex);
                }
            },
        });
        return done.Task;
    }

    private void Run()
    {
        while (!_stopping)
        {
            int processed = 0;
            while (_inbox.TryDequeue(out var command))
            {
                Process(ref command);
                if (++processed == 4096)
                {
                    break;
                }
            }

            if (processed > 0)
            {
                continue;
            }

            Idle();
        }

        // Release what is still queued so pooled frames go back.
        while (_inbox.TryDequeue(out var left))
        {
            left.Frame?.Release();
        }
    }

    private void Idle()
    {
        for (int i = 0; i < SpinsBeforePark; i++)
        {
            if (!_inbox.IsEmpty || _stopping)
            {
                return;
            }

            Thread.SpinWait(20);
        }

        Volatile.Write(ref _parked, 1);
        Interlocked.MemoryBarrier();
        if (!_inbox.IsEmpty || _stopping)
        {
            if (Interlocked.Exchange(ref _parked, 0) == 0)
            {
                _wake.Wait(); // a producer already released: consume its permit
            }

            return;
        }

        _wake.Wait();
    }

    private void Process(ref ShardCommand command)
    {
        switch (command.Kind)
        {
            case ShardCommandKind.Publish:
                Publish(ref command);
                break;
            case ShardCommandKind.Subscribe:
                Subscribe(ref command);
                break;
            case ShardCommandKind.Unsubscribe:
                Unsubscribe(ref command);
                break;
            case ShardCommandKind.Invoke:
                command.Action!();
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Publish(ref ShardCommand command)
    {
        var frame = command.Frame!;
        var session = command.Session;
        var stream = GetOrCreate(new TopicRef(session.Tenant!.Id, frame.Topic, command.Hash));
        ulong seq = stream.Next();
        frame.StampSequence(stream.Epoch, seq);

        var subscribers = stream.Subscribers;
        if (subscribers.Length > 0)
        {
            frame.AddRefs(subscribers.Length);
            foreach (var subscriber in subscribers)
            {
                if (subscriber.Outbox.Enqueue(frame) == EnqueueResult.Overflow)
                {
                    subscriber.CloseAsSlowConsumer();
                }
            }

            _delivered += subscribers.Length;
        }

        _published++;
        if (command.RequestId != 0)
        {
            session.SendAck(command.RequestId, stream.Epoch, seq, EventFlags.None);
        }

        frame.Release();
    }

    private void Subscribe(ref ShardCommand command)
    {
        var key = command.Topic!;
        var stream = GetOrCreate(new TopicRef(key.Tenant, key.Utf8, key.Hash));
        stream.AddSubscriber(command.Session);
        command.Session.SendSubscribed(command.RequestId, key, stream.Epoch, stream.Seq);
    }

    private void Unsubscribe(ref ShardCommand command)
    {
        var key = command.Topic!;
        if (_lookup.TryGetValue(new TopicRef(key.Tenant, key.Utf8, key.Hash), out var stream))
        {
            stream.RemoveSubscriber(command.Session);
        }

        if (command.RequestId != 0)
        {
            command.Session.SendAck(command.RequestId, 0, 0, EventFlags.None);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TopicStream GetOrCreate(TopicRef topic)
    {
        if (_lookup.TryGetValue(topic, out var stream))
        {
            return stream;
        }

        return Create(topic);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private TopicStream Create(TopicRef topic)
    {
        var key = new TopicKey(topic.Tenant, topic.Name, topic.Hash);
        var stream = new TopicStream(key, NextEpoch());
        _topics.Add(key, stream);
        Volatile.Write(ref _topicCount, _topics.Count);
        return stream;
    }

    /// <summary>Epochs are wall-clock microseconds at creation, strictly increasing per shard: a recreated topic never reuses one.</summary>
    private ulong NextEpoch()
    {
        ulong now = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000);
        _lastEpoch = Math.Max(now, _lastEpoch + 1);
        return _lastEpoch;
    }

    /// <summary>Shard thread only (via <see cref="InvokeAsync"/>): the topic's epoch and seq, if it exists.</summary>
    internal bool TryGetPosition(TopicKey key, out ulong epoch, out ulong seq, out int subscribers)
    {
        Debug.Assert(Thread.CurrentThread == _thread);
        if (_topics.TryGetValue(key, out var stream))
        {
            epoch = stream.Epoch;
            seq = stream.Seq;
            subscribers = stream.SubscriberCount;
            return true;
        }

        epoch = seq = 0;
        subscribers = 0;
        return false;
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Release();
        if (_thread.IsAlive && Thread.CurrentThread != _thread)
        {
            _thread.Join(TimeSpan.FromSeconds(5));
        }

        _wake.Dispose();
    }
}
