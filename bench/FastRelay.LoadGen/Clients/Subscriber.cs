using FastRelay.LoadGen.Measurement;
using FastRelay.LoadGen.Wire;
using HdrHistogram;

namespace FastRelay.LoadGen.Clients;

/// <summary>A simulated subscriber: one connection, one topic; counts deliveries and records their latency.</summary>
internal sealed class Subscriber : IInboundSink
{
    private readonly RunState _run;
    private LongHistogram? _histogram;
    private long _now;
    private long _batch;

    private readonly bool _recordLatency;

    /// <param name="recordLatency">False: count deliveries only (a second population in the same process, whose
    /// samples must not mix into the measured one's histograms).</param>
    public Subscriber(ClientConnection connection, RunState run, bool recordLatency = true)
    {
        Connection = connection;
        _run = run;
        _recordLatency = recordLatency;
    }

    public ClientConnection Connection { get; }

    public Task? ReceiveLoop { get; private set; }

    /// <summary>Receive calls that returned data (single writer: this connection's loop).</summary>
    public long Receives { get; private set; }

    public void Start() => ReceiveLoop = Connection.RunReceiveLoopAsync(this);

    public void BeginBatch(long now)
    {
        _now = now;
        _batch = 0;
        if (!_recordLatency)
        {
            _histogram = null;
            return;
        }

        // Fetched (and on a thread's first receive, created: ~220 KB) during warm-up too, so the measurement
        // window sees no one-time allocation; samples are recorded only inside the window.
        var histogram = _run.Latency.ForCurrentThread();
        _histogram = _run.Recording ? histogram : null;
    }

    public void OnInbound(in Inbound message)
    {
        switch (message.Kind)
        {
            case InboundKind.Event:
                _batch++;
                if (_histogram is not null && message.SentTimestamp != 0)
                {
                    LatencyRecorder.Record(_histogram, _now - message.SentTimestamp);
                }

                break;
            case InboundKind.Error:
                _run.CountError(in message);
                break;
            case InboundKind.Close:
                _run.CountClose(null);
                break;
        }
    }

    public void EndBatch()
    {
        Receives++;
        if (_batch > 0)
        {
            _run.AddDelivered(_batch);
        }
    }

    public void OnClosed(Exception? error) => _run.CountClose(error);
}
