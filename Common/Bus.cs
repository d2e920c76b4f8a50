using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace ImageProcessor;

/// <summary>The one way onto and off the bus: durable quorum queues, persistent messages, confirmed publishes. A message
/// is acked once its handler has recorded the work, or goes to "{queue}.dead" after five failed deliveries.</summary>
public sealed class Bus(IConnection connection, IChannel publisher)
{
    public bool IsOpen => connection.IsOpen;

    public static async Task<Bus> ConnectAsync()
    {
        var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        var publisher = await connection.CreateChannelAsync(new CreateChannelOptions(
            publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        foreach (var queue in new[] { "conversions", "jobs" })
        {
            await Declare($"{queue}.dead", []);
            await Declare(queue, new() { ["x-delivery-limit"] = 5, ["x-dead-letter-exchange"] = "",
                ["x-dead-letter-routing-key"] = $"{queue}.dead" });
        }
        return new Bus(connection, publisher);

        Task Declare(string queue, Dictionary<string, object?> arguments) => publisher.QueueDeclareAsync(queue, durable: true,
            exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>(arguments) { ["x-queue-type"] = "quorum" });
    }

    public async Task PublishAsync(string queue, Message message) =>
        await publisher.BasicPublishAsync("", queue, mandatory: true, new BasicProperties { Persistent = true },
            JsonSerializer.SerializeToUtf8Bytes(message));

    /// <summary>Hands each message to handle, at most prefetch at a time, and acks it when handle returns.</summary>
    public async Task ConsumeAsync(string queue, ushort prefetch, Func<Message, Task> handle)
    {
        var channel = await connection.CreateChannelAsync();
        await channel.BasicQosAsync(prefetchSize: 0, prefetchCount: prefetch, global: false);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            try
            {
                await handle(JsonSerializer.Deserialize<Message>(delivery.Body.Span)!);
                await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            }
            catch (Exception e)
            {
                // Back to the queue after a pause, so that a short outage keeps its deliveries; an unreadable one is dead.
                Console.Error.WriteLine($"{queue}: {e.GetType().Name}: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1));
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: e is not JsonException);
            }
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
    }
}

// Only an id travels, of a conversion or a job as the queue says: its row holds the rest, so the two cannot disagree.
public sealed record Message(long Id);
