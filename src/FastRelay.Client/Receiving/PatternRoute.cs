namespace FastRelay.Client;

/// <summary>
/// One pattern this client subscribes to: its matcher and its subscriptions. The server takes one SUB per pattern and
/// connection (a second is refused), so further subscriptions to the same pattern wait for the first SUB's reply and
/// join locally.
/// </summary>
internal sealed class PatternRoute(string pattern)
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TopicPattern Matcher { get; } = new(pattern);

    public string Pattern => Matcher.Text;

    /// <summary>The active subscriptions; swapped under the table lock.</summary>
    public Subscription[] Subscriptions { get; set; } = [];

    /// <summary>The consumer group its one subscription joined (null for plain pattern subscriptions).</summary>
    public string? Group { get; init; }

    /// <summary>The group member's credits (null: the server's default), sent again when it rejoins.</summary>
    public int? Credits { get; init; }

    /// <summary>The connection the pattern's SUB went out on.</summary>
    public ClientConnection? Connection { get; set; }

    /// <summary>Completes when the server acknowledged the first SUB; faults with its refusal or failure.</summary>
    public Task Ready => _ready.Task;

    public bool IsActive => _ready.Task.IsCompletedSuccessfully;

    public void Activate() => _ready.TrySetResult();

    public void Fail(Exception error)
    {
        if (_ready.TrySetException(error))
        {
            _ = _ready.Task.Exception; // waiters get it; nobody else has to observe it
        }
    }
}
