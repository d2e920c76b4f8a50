var db = NpgsqlDataSource.Create(Env.Database(pool: 4));
var bus = await Bus.ConnectAsync();

// A job dead-lettered, one its processors failed on at every delivery, is recorded failed: nothing waits for it.
var deadLetters = await bus.ConsumeAsync("jobs.dead", prefetch: 8, message => db.CreateConnection().ExecuteAsync("""
    UPDATE jobs SET status = 'failed', updated = now(),
        error = 'gave up after 5 deliveries, each of which failed (see the processor log)'
    WHERE id = @Id AND status IN ('queued', 'running')
    """, message));

// The conversions table is the outbox, swept on each announcement (NOTIFY) and each quiet second (ARCHITECTURE.md).
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

// Expands the oldest conversion left (ARCHITECTURE.md): its jobs committed on a second connection, their messages
// confirmed, then it is marked expanded; its row locked meanwhile, FOR NO KEY UPDATE to let the jobs' key through.
async Task<bool> ExpandOneAsync(NpgsqlConnection connection)
{
    await using var transaction = await connection.BeginTransactionAsync();
    var conversion = await connection.QuerySingleOrDefaultAsync<(long Id, string Text)?>("""
        SELECT id, operations FROM conversions WHERE expanded IS NULL ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED
        """);
    if (conversion is null)
        return false;
    var (id, text) = conversion.Value;
    string? error = null;
    try
    {
        // The jobs made now and those queued by an earlier try: the second SELECT sees the table as it was before.
        var queued = await db.CreateConnection().QueryAsync<long>("""
            WITH made AS (INSERT INTO jobs (conversion_id, name, steps)
                SELECT @id, "Name", "Steps" FROM jsonb_to_recordset(@outputs::jsonb) AS o("Name" text, "Steps" jsonb)
                ON CONFLICT DO NOTHING RETURNING id)
            SELECT id FROM made UNION SELECT id FROM jobs WHERE conversion_id = @id AND status = 'queued'
            """, new { id, outputs = JsonSerializer.Serialize(Operations.Parse(text)) });
        await Task.WhenAll(queued.Select(job => bus.PublishAsync("jobs", new Message(job))));
    }
    catch (OperationsException e)
    {
        error = e.Message; // the API refuses a file with a mistake, but a row written around it fails here
    }
    await connection.ExecuteAsync("UPDATE conversions SET expanded = now(), error = @error WHERE id = @id",
        new { id, error });
    await transaction.CommitAsync();
    return true;
}
