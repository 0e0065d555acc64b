using FastRelay.Sidecar;

return await SidecarCli.RunAsync(args).ConfigureAwait(false);
