using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace ImageProcessor;

/// <summary>
/// The one way onto and off the message bus. Queues are durable quorum queues; messages are persistent and every
/// publish waits for the broker's confirm. A message is acked only once its handler has recorded the work, and one
/// that keeps failing is dead-lettered to "{queue}.dead" after DeliveryLimit attempts instead of looping forever.
/// </summary>
public sealed class Bus(IConnection connection, IChannel publisher) : IAsyncDisposable
{
    const int DeliveryLimit = 5;
    static readonly string[] Queues = ["conversions", "jobs"];

    public bool IsOpen => connection.IsOpen;

    /// <summary>Connects, waiting for a broker that is still starting, and declares every queue.</summary>
    public static async Task<Bus> ConnectAsync()
    {
        var factory = new ConnectionFactory { Uri = new Uri(Env.Bus), ClientProvidedName = AppDomain.CurrentDomain.FriendlyName };
        while (true)
        {
            try
            {
                var connection = await factory.CreateConnectionAsync();
                var publisher = await connection.CreateChannelAsync(new CreateChannelOptions(
                    publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
                foreach (var queue in Queues)
                    await DeclareAsync(publisher, queue);
                return new Bus(connection, publisher);
            }
            catch (BrokerUnreachableException)
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }
    }

    public async Task PublishAsync<T>(string queue, T message) =>
        await publisher.BasicPublishAsync("", queue, mandatory: true, new BasicProperties { Persistent = true },
            JsonSerializer.SerializeToUtf8Bytes(message));

    /// <summary>Hands each message to handle, at most prefetch at a time; acks when handle returns.</summary>
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
                // Back off before handing the message back, so that a database outage does not burn its deliveries.
                Console.Error.WriteLine($"{queue}: delivery {delivery.DeliveryTag} failed, requeued: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1));
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true);
            }
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
    }

    public async ValueTask DisposeAsync() => await connection.CloseAsync();

    static async Task DeclareAsync(IChannel channel, string queue)
    {
        var quorum = new Dictionary<string, object?> { ["x-queue-type"] = "quorum" };
        await channel.QueueDeclareAsync($"{queue}.dead", durable: true, exclusive: false, autoDelete: false, arguments: quorum);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>(quorum)
        {
            ["x-delivery-limit"] = DeliveryLimit,
            ["x-dead-letter-exchange"] = "",
            ["x-dead-letter-routing-key"] = $"{queue}.dead",
        });
    }
}
