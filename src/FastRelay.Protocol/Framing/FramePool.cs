using Microsoft.Extensions.ObjectPool;

namespace FastRelay.Protocol;

/// <summary>
/// Pool of <see cref="Frame"/>s. Rent returns a frame with one reference; the last Release brings it back.
/// Frames keep buffers up to <see cref="RetainedBufferBytes"/>; larger ones go back to the shared array pool.
/// </summary>
public sealed class FramePool
{
    /// <summary>Buffers larger than this are not kept by pooled frames.</summary>
    public const int RetainedBufferBytes = 16 * 1024;

    private readonly DefaultObjectPool<Frame> _pool;

    public FramePool(int maximumRetained = 16 * 1024)
    {
        _pool = new DefaultObjectPool<Frame>(new Policy(this), maximumRetained);
    }

    /// <summary>A process-wide pool.</summary>
    public static FramePool Shared { get; } = new();

    /// <summary>A frame with one reference, empty.</summary>
    public Frame Rent()
    {
        var frame = _pool.Get();
        frame.Revive();
        return frame;
    }

    internal void Return(Frame frame)
    {
        frame.Trim(RetainedBufferBytes);
        _pool.Return(frame);
    }

    private sealed class Policy(FramePool owner) : PooledObjectPolicy<Frame>
    {
        public override Frame Create() => new(owner);

        public override bool Return(Frame obj) => true;
    }
}
