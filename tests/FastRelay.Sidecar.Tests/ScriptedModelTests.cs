using FastRelay.Sidecar.Models;
using FastRelay.Sidecar.Tests.Infrastructure;

namespace FastRelay.Sidecar.Tests;

public sealed class ScriptedModelTests
{
    [Fact]
    public async Task Echo_streams_the_last_user_message_word_by_word()
    {
        var model = new ScriptedModel(echoPrefix: "You said: ");
        var request = new ModelRequest("echo", [new(ChatRole.User, "first"), new(ChatRole.Assistant, "ok"), new(ChatRole.User, "hello  relay\nworld")]);

        List<ModelChunk> chunks = await Collect.ChunksAsync(model, request);

        Assert.Equal(["You ", "said: ", "hello  ", "relay\n", "world", ""], chunks.Select(c => c.Text));
        Assert.True(chunks[^1].IsFinal);
        Assert.Equal(ModelChunk.Stop, chunks[^1].FinishReason);
    }

    [Fact]
    public async Task A_script_is_followed_line_by_line_in_turn()
    {
        var model = new ScriptedModel(["first reply", "second reply"]);
        var request = ModelRequest.FromUser("script", "anything");

        string Text(List<ModelChunk> chunks) => string.Concat(chunks.Select(c => c.Text));
        Assert.Equal("first reply", Text(await Collect.ChunksAsync(model, request)));
        Assert.Equal("second reply", Text(await Collect.ChunksAsync(model, request)));
        Assert.Equal("first reply", Text(await Collect.ChunksAsync(model, request)));
        Assert.Equal(3, model.Calls);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("one")]
    [InlineData("  leading and trailing  ")]
    [InlineData("tabs\tand\r\nnewlines")]
    public void Tokens_concatenate_to_exactly_the_text(string text) =>
        Assert.Equal(text, string.Concat(ScriptedModel.Tokenize(text)));

    [Fact]
    public async Task The_token_delay_is_cancellable()
    {
        var model = new ScriptedModel(tokenDelay: TimeSpan.FromMinutes(5));
        using var cts = new CancellationTokenSource();
        Task read = Collect.ChunksAsync(model, ModelRequest.FromUser("echo", "never arrives"), cts.Token);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read);
    }
}
