using System.Text.Json;
using Dapper;
using ImageProcessor;
using Npgsql;

// Database and bus
var db = NpgsqlDataSource.Create(Env.Database);
var bus = await Bus.ConnectAsync();

// Expand each conversion into one job per output line, recording each job's message in the outbox by the same
// statement. A redelivered conversion is harmless: a job is unique per (conversion, name).
await bus.ConsumeAsync("conversions", prefetch: 8, async message =>
{
    await using var connection = await db.OpenConnectionAsync();
    var text = await connection.QuerySingleAsync<string>("SELECT operations FROM conversions WHERE id = @Id", message);
    await connection.ExecuteAsync("""
        WITH jobs AS (
            INSERT INTO jobs (conversion_id, name, steps)
            SELECT @Id, "Name", "Steps" FROM jsonb_to_recordset(@outputs::jsonb) AS outputs("Name" text, "Steps" jsonb)
            ON CONFLICT DO NOTHING RETURNING id)
        INSERT INTO outbox (queue, message) SELECT 'jobs', id FROM jobs
        """, new { message.Id, outputs = JsonSerializer.Serialize(Operations.Parse(text)) });
});

// A dead-lettered job, one its processors failed on at every delivery, is recorded as failed: nothing waits for it.
await bus.ConsumeAsync("jobs.dead", prefetch: 8, async message => await db.CreateConnection().ExecuteAsync("""
    UPDATE jobs SET status = 'failed', error = 'gave up after 5 deliveries, each of which failed (see the processor log)'
    WHERE id = @Id AND status IN ('queued', 'running')
    """, message));

_ = Task.Run(RelayAsync);
await bus.RunUntilStoppedAsync();

// The outbox relay, for the API and this converter: publishes what is recorded there as soon as Postgres announces a
// commit and every second anyway, so that what a crash or an outage held back still goes out, then deletes it.
async Task RelayAsync()
{
    while (true)
    {
        try
        {
            await using var listener = await db.OpenConnectionAsync();
            await listener.ExecuteAsync("LISTEN outbox");
            for (; ; await listener.WaitAsync(TimeSpan.FromSeconds(1))) // a commit's notification, or a second
            {
                await using var transaction = await listener.BeginTransactionAsync();
                foreach (var (queue, id) in await listener.QueryAsync<(string, long)>(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING queue, message"))
                    await bus.PublishAsync(queue, new Message(id));
                await transaction.CommitAsync();
            }
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"outbox: waiting for the database and the bus: {e.Message}");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }
}
