using FastRelay.Server;

return await Cli.RunAsync(args).ConfigureAwait(false);
