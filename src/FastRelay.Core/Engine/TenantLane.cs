namespace FastRelay.Core.Engine;

/// <summary>
/// One tenant's publishes waiting on a shard for their turn (deficit round robin). Grows up to a cap; a tenant
/// whose lane is full gets BACKOFF from the shard while other tenants keep their turns. Shard thread only.
/// </summary>
internal sealed class TenantLane
{
    private ShardCommand[] _items = new ShardCommand[16];
    private int _head;
    private int _count;

    public TenantLane(int tenant) => Tenant = tenant;

    public int Tenant { get; }

    public int Count => _count;

    /// <summary>Commands this lane may still run in the current round.</summary>
    public int Deficit { get; set; }

    /// <summary>In the shard's round-robin list.</summary>
    public bool Active { get; set; }

    public bool TryEnqueue(in ShardCommand command, int capacity)
    {
        if (_count == _items.Length)
        {
            if (_items.Length >= capacity)
            {
                return false;
            }

            Grow(Math.Min(capacity, _items.Length * 2));
        }

        _items[(_head + _count) % _items.Length] = command;
        _count++;
        return true;
    }

    public bool TryDequeue(out ShardCommand command)
    {
        if (_count == 0)
        {
            command = default;
            return false;
        }

        ref var slot = ref _items[_head];
        command = slot;
        slot = default;
        _head = (_head + 1) % _items.Length;
        _count--;
        return true;
    }

    private void Grow(int size)
    {
        var next = new ShardCommand[size];
        for (int i = 0; i < _count; i++)
        {
            next[i] = _items[(_head + i) % _items.Length];
        }

        _items = next;
        _head = 0;
    }
}
