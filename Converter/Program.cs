var db = NpgsqlDataSource.Create(Env.Database);
var bus = await Bus.ConnectAsync();

// A dead-lettered job, one its processors failed on at every delivery, is recorded as failed: nothing waits for it.
await bus.ConsumeAsync("jobs.dead", prefetch: 8, async message => await db.CreateConnection().ExecuteAsync("""
    UPDATE jobs SET status = 'failed', error = 'gave up after 5 deliveries, each of which failed (see the processor log)'
    WHERE id = @Id AND status IN ('queued', 'running')
    """, message));

// The conversions table is the outbox: the API only records a conversion, and Postgres announces it (db/schema.sql).
// An announcement sets off a sweep, and so does every second without one: a conversion recorded while this converter,
// the database or the broker was away is expanded once all are back.
await bus.RunUntilStoppedAsync(Task.Run(async () =>
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

// Expands a conversion into one job per output line, in three steps: the jobs are committed, so that a processor never
// gets an id whose row it cannot see; their messages are confirmed; the conversion is marked expanded. A crash between
// them expands it again, which adds no job (one per name) and republishes those still queued. Its row stays locked till
// then, so that other converters skip it; FOR NO KEY UPDATE lets the jobs' foreign key, checked on another connection, by.
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
        error = e.Message; // a mistake in a standing order (the API refuses one in a posted file) fails the conversion
    }
    await connection.ExecuteAsync("UPDATE conversions SET expanded = now(), error = @error WHERE id = @id", new { id, error });
    await transaction.CommitAsync();
    return true;
}
