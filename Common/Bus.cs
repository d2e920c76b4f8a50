using System.Data.Common;
using System.Runtime.InteropServices;
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
    volatile bool stopping;
    int busy; // handlers at work

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
            Interlocked.Increment(ref busy);
            try
            {
                // Once stopping, a message is left unacked, and closing hands it back to the queue.
                for (var done = false; !done && !stopping;)
                {
                    try
                    {
                        await handle(JsonSerializer.Deserialize<Message>(delivery.Body.Span)!);
                        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
                        done = true;
                    }
                    catch (DbException e) when (e.IsTransient) // not the message's fault: it waits, keeping its deliveries
                    {
                        Console.Error.WriteLine($"{queue}: waiting for the database: {e.Message}");
                        await Task.Delay(TimeSpan.FromSeconds(1));
                    }
                }
            }
            catch (Exception e)
            {
                // Handed back after a pause, up to the delivery limit; a message that cannot be read is dead at once.
                Console.Error.WriteLine($"{queue}: {e.GetType().Name}: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1));
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: e is not JsonException);
            }
            finally
            {
                Interlocked.Decrement(ref busy);
            }
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
    }

    /// <summary>Runs until SIGTERM (a deploy, a scale-down), then takes no more messages, lets the handlers at work
    /// finish, and closes, which hands every message not acked back to its queue.</summary>
    public async Task RunUntilStoppedAsync()
    {
        var stop = new TaskCompletionSource();
        // Cancelling the signal's default, an immediate exit: the process ends when this returns.
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => signal.Cancel = stop.TrySetResult());
        await stop.Task;
        stopping = true;
        while (Volatile.Read(ref busy) > 0)
            await Task.Delay(50);
        await connection.CloseAsync();
    }
}

// What travels on the bus is only an id, of a conversion or of a job as the queue says: the row in Postgres holds the
// rest, so a message cannot disagree with it.
public sealed record Message(long Id);
