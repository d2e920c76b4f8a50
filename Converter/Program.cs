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
                if (!await ExpandAsync(listener))
                    await listener.WaitAsync(TimeSpan.FromSeconds(1));
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"conversions: {e.GetType().Name}: {e.Message}; trying again in a second");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
}));

// Expands the oldest conversions left, up to 100 in the statements one alone takes (ARCHITECTURE.md): their jobs
// committed on a second connection, their messages confirmed, then they are marked expanded; their rows locked on the
// outbox's connection meanwhile, FOR NO KEY UPDATE to let the jobs' key through.
async Task<bool> ExpandAsync(NpgsqlConnection outbox)
{
    await using var transaction = await outbox.BeginTransactionAsync();
    var conversions = (await outbox.QueryAsync<(long Id, string Text)>("""
        SELECT id, operations FROM conversions WHERE expanded IS NULL ORDER BY id LIMIT 100
        FOR NO KEY UPDATE SKIP LOCKED
        """)).ToArray();
    if (conversions.Length == 0)
        return false;
    var jobs = new List<object>();
    foreach (var (id, text) in conversions)
        try
        {
            jobs.AddRange(Operations.Parse(text).Select(output => new { Conversion = id, output.Name, output.Steps }));
        }
        catch (OperationsException e) // the API refuses a file with a mistake, but a row written around it fails here
        {
            await outbox.ExecuteAsync("UPDATE conversions SET error = @Message WHERE id = @id", new { id, e.Message });
        }
    var ids = conversions.Select(conversion => conversion.Id).ToArray();
    // The jobs made now and those queued by an earlier try: the second SELECT sees the table as it was before.
    var queued = await db.CreateConnection().QueryAsync<long>("""
        WITH made AS (INSERT INTO jobs (conversion_id, name, steps) SELECT "Conversion", "Name", "Steps"
            FROM jsonb_to_recordset(@jobs::jsonb) AS o("Conversion" bigint, "Name" text, "Steps" jsonb)
            WHERE NOT EXISTS (SELECT FROM jobs WHERE conversion_id = "Conversion") -- made before: no key to wait on
            ON CONFLICT DO NOTHING RETURNING id)
        SELECT id FROM made UNION SELECT id FROM jobs WHERE conversion_id = ANY(@ids) AND status = 'queued' ORDER BY id
        """, new { ids, jobs = JsonSerializer.Serialize(jobs) });
    await Task.WhenAll(queued.Select(job => bus.PublishAsync("jobs", new Message(job))));
    await outbox.ExecuteAsync("UPDATE conversions SET expanded = now() WHERE id = ANY(@ids)", new { ids });
    await transaction.CommitAsync();
    return true;
}
