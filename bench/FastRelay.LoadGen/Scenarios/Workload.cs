using System.Text;
using FastRelay.LoadGen.Cli;

namespace FastRelay.LoadGen.Scenarios;

/// <summary>
/// The shape of a pub/sub run, identical for every target: topics, subscribers per topic (each its own
/// connection), publishers and the topics each one publishes to.
/// </summary>
internal sealed class Workload
{
    public Workload(LoadGenOptions options)
    {
        Topics = options.Topics;
        SubscribersPerTopic = options.Subscribers;
        Publishers = options.Publishers;
        TopicNames = new ReadOnlyMemory<byte>[Topics];
        for (int i = 0; i < Topics; i++)
        {
            TopicNames[i] = Encoding.UTF8.GetBytes($"loadgen.{options.ScenarioName}.t{i}");
        }
    }

    public int Topics { get; }

    public int SubscribersPerTopic { get; }

    public int Publishers { get; }

    public int SubscriberCount => Topics * SubscribersPerTopic;

    public ReadOnlyMemory<byte>[] TopicNames { get; }

    /// <summary>Subscriber <paramref name="index"/>'s topic: subscribers are dealt round-robin over the topics.</summary>
    public ReadOnlyMemory<byte> TopicOfSubscriber(int index) => TopicNames[index % Topics];

    /// <summary>
    /// The topics publisher <paramref name="index"/> cycles through: with at least as many topics as publishers,
    /// every topic belongs to exactly one publisher; with fewer, publishers share topics.
    /// </summary>
    public ReadOnlyMemory<byte>[] TopicsOfPublisher(int index)
    {
        if (Topics < Publishers)
        {
            return [TopicNames[index % Topics]];
        }

        var mine = new List<ReadOnlyMemory<byte>>();
        for (int t = index; t < Topics; t += Publishers)
        {
            mine.Add(TopicNames[t]);
        }

        return mine.ToArray();
    }
}
