using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace ImageProcessor;

/// <summary>
/// The one way onto and off the bus: durable quorum queues, persistent messages, every publish confirmed. A message is
/// acked once its handler has recorded the work; one that keeps failing goes to "{queue}.dead" after five deliveries.
/// </summary>
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
            var quorum = new Dictionary<string, object?> { ["x-queue-type"] = "quorum" };
            await publisher.QueueDeclareAsync($"{queue}.dead", durable: true, exclusive: false, autoDelete: false,
                arguments: quorum);
            quorum["x-delivery-limit"] = 5;
            quorum["x-dead-letter-exchange"] = "";
            quorum["x-dead-letter-routing-key"] = $"{queue}.dead";
            await publisher.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: quorum);
        }
        return new Bus(connection, publisher);
    }

    public async Task PublishAsync<T>(string queue, T message) =>
        await publisher.BasicPublishAsync("", queue, mandatory: true, new BasicProperties { Persistent = true },
            JsonSerializer.SerializeToUtf8Bytes(message));

    /// <summary>Hands each message to handle, at most prefetch at a time, and acks it when handle returns.</summary>
    public async Task ConsumeAsync<T>(string queue, ushort prefetch, Func<T, Task> handle)
    {
        var channel = await connection.CreateChannelAsync();
        await channel.BasicQosAsync(prefetchSize: 0, prefetchCount: prefetch, global: false);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            try
            {
                await handle(JsonSerializer.Deserialize<T>(delivery.Body.Span)!);
                await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            }
            catch (Exception e)
            {
                // Wait before handing the message back, so that a short database outage does not use up its deliveries.
                Console.Error.WriteLine($"{queue}: requeued after {e.GetType().Name}: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1));
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true);
            }
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
    }
}

// What travels on the bus is only an id: the row in Postgres holds the rest, so a message cannot disagree with it.
public sealed record ConversionMessage(long ConversionId);
public sealed record JobMessage(long JobId);
