using System.Text.Json;
using Dapper;
using ImageProcessor;
using Npgsql;

var db = NpgsqlDataSource.Create(Env.Database);
var bus = await Bus.ConnectAsync();

// Expand each conversion into one job per output line. A redelivered conversion is harmless: a job is unique per
// (conversion, name), and every job still queued is published again, so a crash between the two steps loses nothing.
await bus.ConsumeAsync("conversions", prefetch: 8, async message =>
{
    await using var connection = await db.OpenConnectionAsync();
    var text = await connection.QuerySingleAsync<string>("SELECT operations FROM conversions WHERE id = @Id", message);
    var queued = await connection.QueryAsync<long>("""
        WITH made AS (INSERT INTO jobs (conversion_id, name, steps)
            SELECT @Id, "Name", "Steps" FROM jsonb_to_recordset(@outputs::jsonb) AS outputs("Name" text, "Steps" jsonb)
            ON CONFLICT DO NOTHING RETURNING id)
        SELECT id FROM made UNION SELECT id FROM jobs WHERE conversion_id = @Id AND status = 'queued'
        """, new { message.Id, outputs = JsonSerializer.Serialize(Operations.Parse(text)) });
    await Task.WhenAll(queued.Select(job => bus.PublishAsync("jobs", new Message(job))));
});

// A dead-lettered job, one its processors failed on at every delivery, is recorded as failed: nothing waits for it.
await bus.ConsumeAsync("jobs.dead", prefetch: 8, async message => await db.CreateConnection().ExecuteAsync("""
    UPDATE jobs SET status = 'failed', error = 'gave up after 5 deliveries, each of which failed (see the processor log)'
    WHERE id = @Id AND status IN ('queued', 'running')
    """, message));

await Task.Delay(Timeout.Infinite);
