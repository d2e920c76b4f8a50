namespace ImageProcessor;

/// <summary>The one way onto and off the bus, whose queues db/definitions.json declares: persistent messages, confirmed
/// publishes, and each message acked once its handler has recorded the work.</summary>
public sealed class Bus(IConnection connection, IChannel publisher)
{
    static readonly BasicProperties Persistent = new() { Persistent = true };
    /// <summary>Cancelled on SIGTERM, as a deploy or a scale-down sends: no new work is taken after it.</summary>
    public CancellationTokenSource Stopping { get; } = new();

    public static async Task<Bus> ConnectAsync()
    {
        var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        return new Bus(connection, await connection.CreateChannelAsync(new(publisherConfirmationsEnabled: true,
            publisherConfirmationTrackingEnabled: true)));
    }

    public async Task PublishAsync(string queue, Message message) => await publisher.BasicPublishAsync("", queue,
        mandatory: true, Persistent, JsonSerializer.SerializeToUtf8Bytes(message));

    /// <summary>Hands handle Message(0), no job, to warm it; then each message in turn, acked once handled.</summary>
    public async Task<Task> ConsumeAsync(string queue, ushort prefetch, Func<Message, Task> handle)
    {
        var channel = await connection.CreateChannelAsync();
        await channel.BasicQosAsync(prefetchSize: 0, prefetchCount: prefetch, global: false);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, args) =>
        {
            try
            {
                Stopping.Token.ThrowIfCancellationRequested(); // one held (prefetch) is not begun once stopping
                await handle(JsonSerializer.Deserialize<Message>(args.Body.Span)!);
                await channel.BasicAckAsync(args.DeliveryTag, multiple: false);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"{queue}: {e.GetType().Name}: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1));
                if (e is DbException { IsTransient: true } or OperationCanceledException)
                {
                    // No fault of the message: a copy, its count of deliveries new, takes its place (ARCHITECTURE.md).
                    await publisher.BasicPublishAsync("", queue, mandatory: true, Persistent, args.Body);
                    await channel.BasicAckAsync(args.DeliveryTag, multiple: false);
                }
                else // back to the queue, up to the delivery limit; dead at once if it cannot be read
                    await channel.BasicNackAsync(args.DeliveryTag, multiple: false, requeue: e is not JsonException);
            }
        };
        // The broker's cancel-ok reaches the consumer only after the handler at work has finished: then it is idle. (A
        // broker outage unregisters it too, and registers it again on its return.)
        var stopped = new TaskCompletionSource();
        consumer.UnregisteredAsync += (_, _) =>
        {
            if (Stopping.IsCancellationRequested)
                stopped.TrySetResult();
            return Task.CompletedTask;
        };
        await handle(new Message(0)); // first on no job, so that its connection and code are ready before the first one
        var tag = await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        Stopping.Token.Register(() => channel.BasicCancelAsync(tag));
        return stopped.Task;
    }

    /// <summary>Runs until SIGTERM, then waits for the work given (consumers, loops) to stop, STOP_SECONDS at most (8:
    /// compose kills 10 s after SIGTERM); a job unfinished then goes back to its queue as the process exits.</summary>
    public async Task RunUntilStoppedAsync(params Task[] work)
    {
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal =>
        {
            signal.Cancel = true; // not SIGTERM's default, an exit at once with status 143: the work in hand ends first
            Stopping.Cancel();
        });
        await Task.WhenAny(Task.Delay(Timeout.Infinite, Stopping.Token)); // which ends, cancelled, on SIGTERM
        await Task.WhenAny(Task.WhenAll(work), Task.Delay(int.Parse(Env.Get("STOP_SECONDS", "8")) * 1000));
    }
}

// Only the id of a job travels: its row holds the rest, so the two cannot disagree.
public sealed record Message(long Id);
