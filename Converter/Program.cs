var db = NpgsqlDataSource.Create(Env.Database);
var bus = await Bus.ConnectAsync();

// A dead-lettered job, one its processors failed on at every delivery, is recorded as failed: nothing waits for it.
var deadLetters = await bus.ConsumeAsync("jobs.dead", prefetch: 8, async message => await db.CreateConnection().ExecuteAsync("""
    UPDATE jobs SET status = 'failed', updated = now(), error = 'gave up after 5 deliveries, each of which failed (see the processor log)'
    WHERE id = @Id AND status IN ('queued', 'running')
    """, message));

// The conversions table is the outbox: the API only records a conversion, which Postgres announces (db/schema.sql). A
// sweep follows each announcement and each quiet second, so what was recorded while anything was away is expanded later.
await bus.RunUntilStoppedAsync(deadLetters, Task.Run(async () =>
{
    while (!bus.Stopping.IsCancellationRequested)
        try
        {
            await using var listener = await db.OpenConnectionAsync();
            await listener.ExecuteAsync("LISTEN conversions");
            while (!bus.Stopping.IsCancellationRequested)
                if (!await ExpandOneAsync(listener))
                    await listener.WaitAsync(TimeSpan.FromSeconds(1));
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"conversions: {e.GetType().Name}: {e.Message}; trying again in a second");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
}));

// Expands a conversion into jobs in three steps: the jobs committed (a processor must see the row of an id it gets), their
// messages confirmed, the conversion marked expanded; after a crash it is expanded again (no job twice, the queued ones
// republished). Its row stays locked meanwhile for other converters to skip; NO KEY lets the jobs' foreign key through.
async Task<bool> ExpandOneAsync(NpgsqlConnection connection)
{
    await using var transaction = await connection.BeginTransactionAsync();
    var conversion = await connection.QuerySingleOrDefaultAsync<(long Id, string Text)?>(
        "SELECT id, operations FROM conversions WHERE expanded IS NULL ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED");
    if (conversion is not (long id, string text))
        return false;
    string? error = null;
    try
    {
        var queued = await db.CreateConnection().QueryAsync<long>("""
            WITH made AS (INSERT INTO jobs (conversion_id, name, steps)
                SELECT @id, "Name", "Steps" FROM jsonb_to_recordset(@outputs::jsonb) AS outputs("Name" text, "Steps" jsonb)
                ON CONFLICT DO NOTHING RETURNING id)
            SELECT id FROM made UNION SELECT id FROM jobs WHERE conversion_id = @id AND status = 'queued'
            """, new { id, outputs = JsonSerializer.Serialize(Operations.Parse(text)) });
        await Task.WhenAll(queued.Select(job => bus.PublishAsync("jobs", new Message(job))));
    }
    catch (OperationsException e)
    {
        error = e.Message; // the API refuses a posted file with a mistake, but a row written otherwise fails here
    }
    await connection.ExecuteAsync("UPDATE conversions SET expanded = now(), error = @error WHERE id = @id", new { id, error });
    await transaction.CommitAsync();
    return true;
}
