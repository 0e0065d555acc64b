namespace FastRelay.LoadGen.Targets;

/// <summary>Finds the repository root (the folder holding FastRelay.sln) and the default server binaries under it.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string NativeServer => Path.Combine(Root, "artifacts", "native", "fastrelay");

    public static string JitServer => Path.Combine(Root, "src", "FastRelay.Server", "bin", "Release", "net10.0", "fastrelay.dll");

    private static string FindRoot()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "FastRelay.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
