using System.Security.Cryptography;
using System.Text;

namespace FastRelay.Sidecar.Running;

/// <summary>The KV key of a job's state: <c>sidecar.jobs.{group}.{agent}.{job}</c>.</summary>
/// <remarks>
/// The agent's name is part of the key because the agents of a chain pass one job id along: each needs its own record
/// even when two of them were given the same group name. Every sidecar running an agent shares its records.
/// Keys follow the relay's topic-name rules, so a job id is used as it is only when it is one short segment (no '.',
/// whitespace, control characters or wildcards, and not starting with '~'); any other id is replaced by '~' and the
/// hex SHA-256 of its UTF-8 bytes. Both forms are injective and cannot collide with each other.
/// </remarks>
internal static class JobKeys
{
    public const string Prefix = "sidecar.jobs";
    private const int MaxPlainBytes = 96;

    public static string For(string group, string agent, string jobId) => $"{Prefix}.{group}.{agent}.{Segment(jobId)}";

    private static string Segment(string jobId)
    {
        bool plain = jobId.Length > 0 && jobId[0] != '~' && Encoding.UTF8.GetByteCount(jobId) <= MaxPlainBytes;
        foreach (char c in jobId)
        {
            if (!plain)
            {
                break;
            }

            plain = c is not ('.' or '*' or '>') && !char.IsWhiteSpace(c) && !char.IsControl(c);
        }

        return plain ? jobId : "~" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(jobId)));
    }
}
