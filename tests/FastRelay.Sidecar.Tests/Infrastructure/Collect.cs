using FastRelay.Sidecar.Calls;
using FastRelay.Sidecar.Models;

namespace FastRelay.Sidecar.Tests.Infrastructure;

/// <summary>Drains model streams in tests, with a ceiling so a bug fails the test instead of hanging it.</summary>
internal static class Collect
{
    /// <summary>Longest any test waits for a signal; far above every configured timeout, so it only catches hangs.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    public static async Task<List<ModelChunk>> ChunksAsync(IModelAdapter adapter, ModelRequest request, CancellationToken ct = default)
    {
        var chunks = new List<ModelChunk>();
        async Task Drain()
        {
            await foreach (ModelChunk chunk in adapter.StreamAsync(request, ct))
            {
                chunks.Add(chunk);
            }
        }

        await Drain().WaitAsync(Patience);
        return chunks;
    }

    /// <summary>All partials and the final result; asserts the final comes exactly once, last.</summary>
    public static async Task<(List<ModelPartial> Partials, ModelCallResult Result)> CallAsync(
        ResilientModelCaller caller, string input, Func<ModelPartial, Task>? onPartial = null, CancellationToken ct = default)
    {
        var partials = new List<ModelPartial>();
        var finals = new List<ModelCallResult>();
        async Task Drain()
        {
            await foreach (ModelCallUpdate update in caller.CallAsync(input, ct))
            {
                Assert.Empty(finals);
                switch (update)
                {
                    case ModelPartial partial:
                        partials.Add(partial);
                        if (onPartial is not null)
                        {
                            await onPartial(partial);
                        }

                        break;
                    case ModelCallResult result:
                        finals.Add(result);
                        break;
                }
            }
        }

        await Drain().WaitAsync(Patience);
        ModelCallResult final = Assert.Single(finals);
        return (partials, final);
    }
}
