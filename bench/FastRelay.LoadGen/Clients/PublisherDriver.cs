using System.Diagnostics;
using FastRelay.LoadGen.Measurement;

namespace FastRelay.LoadGen.Clients;

/// <summary>
/// One thread that drives every publisher, bounded in time and count. At a fixed rate it sends what each
/// publisher is due; at rate 0 it sends as fast as two windows allow, the same for every target:
/// at most <c>window</c> unanswered publishes per publisher, and at most <c>window × publishers</c> messages
/// whose deliveries have not all arrived yet (so a max-rate run measures what the server sustains instead of
/// piling messages into its output buffers until it disconnects the subscribers).
/// </summary>
internal sealed class PublisherDriver
{
    private const int MaxBatch = 64;
    private const int SpinsBeforeSleep = 8;

    private readonly Publisher[] _publishers;
    private readonly RunState _run;
    private readonly int _ratePerPublisher;
    private readonly int _window;
    private readonly long _deliveriesPerMessage;
    private readonly long _maxMessages;
    private readonly Thread _thread;
    private long _startTicks;
    private long _endTicks;
    private volatile bool _stop;

    public PublisherDriver(Publisher[] publishers, RunState run, int ratePerPublisher, int window, long deliveriesPerMessage, long maxMessages)
    {
        _publishers = publishers;
        _run = run;
        _ratePerPublisher = ratePerPublisher;
        _window = window;
        _deliveriesPerMessage = Math.Max(1, deliveriesPerMessage);
        _maxMessages = maxMessages;
        _thread = new Thread(Run) { IsBackground = true, Name = "loadgen-publishers" };
    }

    /// <summary>Publishes sent by all publishers.</summary>
    public long Sent
    {
        get
        {
            long sent = 0;
            foreach (var p in _publishers)
            {
                sent += p.Sent;
            }

            return sent;
        }
    }

    public Exception? Failure { get; private set; }

    public void Start(TimeSpan duration)
    {
        _startTicks = Stopwatch.GetTimestamp();
        _endTicks = _startTicks + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        _thread.Start();
    }

    public void Stop() => _stop = true;

    public bool Join(TimeSpan timeout) => _thread.Join(timeout);

    private void Run()
    {
        try
        {
            Loop();
        }
        catch (Exception ex)
        {
            // A send failed: the server closed a publisher. The run reports it; nothing else publishes.
            Failure = ex;
        }
    }

    private void Loop()
    {
        var spin = new SpinWait();
        long total = 0;
        long ticksPerSecond = Stopwatch.Frequency;
        while (!_stop)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= _endTicks || total >= _maxMessages)
            {
                return;
            }

            long undelivered = total - _run.Delivered / _deliveriesPerMessage;
            long budget = Math.Min((long)_window * _publishers.Length - undelivered, _maxMessages - total);
            bool sent = false;
            foreach (var publisher in _publishers)
            {
                if (budget <= 0)
                {
                    break;
                }

                long mine = publisher.Sent;
                long allowed = Math.Min(MaxBatch, budget);
                if (_ratePerPublisher > 0)
                {
                    long due = (long)((double)(now - _startTicks) * _ratePerPublisher / ticksPerSecond) + 1;
                    allowed = Math.Min(allowed, due - mine);
                }

                allowed = Math.Min(allowed, _window - (mine - publisher.Replies));
                if (allowed <= 0)
                {
                    continue;
                }

                publisher.Publish((int)allowed);
                total += allowed;
                budget -= allowed;
                sent = true;
            }

            if (sent)
            {
                spin.Reset();
            }
            else if (_ratePerPublisher == 0 && spin.Count < SpinsBeforeSleep)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
            else
            {
                // Nothing due, or the window is full: sleep instead of spinning, the cores belong to the server.
                // The window holds far more than 1 ms of deliveries at any rate this box reaches.
                Thread.Sleep(1);
            }
        }
    }
}
