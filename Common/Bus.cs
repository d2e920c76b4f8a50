namespace ImageProcessor;

/// <summary>The one way onto and off the bus: durable quorum queues, persistent messages, confirmed publishes. A message
/// is acked once its handler has recorded the work; a job goes to "jobs.dead" after five failed deliveries.</summary>
public sealed class Bus(IConnection connection, IChannel publisher)
{
    readonly CancellationTokenSource stopping = new();
    /// <summary>Cancelled on SIGTERM, as a deploy or a scale-down sends: no new work is taken after it.</summary>
    public CancellationToken Stopping => stopping.Token;

    public static async Task<Bus> ConnectAsync()
    {
        var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        var publisher = await connection.CreateChannelAsync(new(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        await publisher.QueueDeclareAsync("jobs.dead", durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
        await publisher.QueueDeclareAsync("jobs", durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
            { ["x-queue-type"] = "quorum", ["x-delivery-limit"] = 5, ["x-dead-letter-exchange"] = "", ["x-dead-letter-routing-key"] = "jobs.dead" });
        return new Bus(connection, publisher);
    }

    public async Task PublishAsync(string queue, Message message) => await publisher.BasicPublishAsync("", queue,
        mandatory: true, new BasicProperties { Persistent = true }, JsonSerializer.SerializeToUtf8Bytes(message));

    /// <summary>Hands each message to handle, at most prefetch at a time, and acks it when handle returns. Returns a task
    /// that ends once the consumer has stopped, on SIGTERM, with nothing in hand.</summary>
    public async Task<Task> ConsumeAsync(string queue, ushort prefetch, Func<Message, Task> handle)
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
                // Back to the queue after a pause, up to the delivery limit; an unreadable one is dead at once. One the
                // database was away for is not at fault: a copy takes its place, with the broker's count of deliveries new.
                Console.Error.WriteLine($"{queue}: {e.GetType().Name}: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1));
                if (e is DbException { IsTransient: true })
                    await PublishAsync(queue, JsonSerializer.Deserialize<Message>(delivery.Body.Span)!);
                await (e is DbException { IsTransient: true } ? channel.BasicAckAsync(delivery.DeliveryTag, multiple: false)
                    : channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: e is not JsonException));
            }
        };
        // The broker's cancel-ok reaches the consumer only after the handler at work has finished: then it is idle. (A
        // channel closed by a broker outage unregisters it too, but it is registered again when the broker returns.)
        var cancelled = new TaskCompletionSource();
        consumer.UnregisteredAsync += (_, _) => Task.FromResult(Stopping.IsCancellationRequested && cancelled.TrySetResult());
        var tag = await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        Stopping.Register(() => channel.BasicCancelAsync(tag));
        return cancelled.Task;
    }

    /// <summary>Runs until SIGTERM, then waits for the work given (consumers, loops) to stop, STOP_SECONDS at most
    /// (8: compose kills 10 s after SIGTERM); a job unfinished then goes back to its queue as it exits.</summary>
    public async Task RunUntilStoppedAsync(params Task[] work)
    {
        var signalled = new TaskCompletionSource(); // cancelling SIGTERM's default, an exit at once, with status 143
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => signal.Cancel = signalled.TrySetResult());
        await signalled.Task;
        await stopping.CancelAsync();
        await Task.WhenAny(Task.WhenAll(work), Task.Delay(int.Parse(Env.Get("STOP_SECONDS", "8")) * 1000));
    }
}

// Only the id of a job travels: its row holds the rest, so the two cannot disagree.
public sealed record Message(long Id);
