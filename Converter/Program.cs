using System.Text.Json;
using Dapper;
using ImageProcessor;
using Npgsql;

// Database
await using var db = NpgsqlDataSource.Create(Env.Database);

// Bus
await using var bus = await Bus.ConnectAsync();

// Expand each conversion into one job per output line. A redelivered conversion is harmless: a job is unique per
// (conversion, name), and every job still queued is published again, so a crash between the two steps loses nothing.
await bus.ConsumeAsync<ConversionMessage>("conversions", prefetch: 8, async message =>
{
    await using var connection = await db.OpenConnectionAsync();
    var text = await connection.QuerySingleOrDefaultAsync<string>(
        "SELECT operations FROM conversions WHERE id = @ConversionId", message);
    if (text is null)
        return; // nothing was recorded under this id: no conversion waits for it
    var outputs = Operations.Parse(text);
    await connection.ExecuteAsync(
        "INSERT INTO jobs (conversion_id, name, steps) VALUES (@id, @Name, @Steps::jsonb) ON CONFLICT DO NOTHING",
        outputs.Select(output => new { id = message.ConversionId, output.Name, Steps = JsonSerializer.Serialize(output.Steps) }));
    var jobs = await connection.QueryAsync<long>(
        "SELECT id FROM jobs WHERE conversion_id = @ConversionId AND status = 'queued' ORDER BY id", message);
    foreach (var job in jobs)
        await bus.PublishAsync("jobs", new JobMessage(job));
});

Console.WriteLine("converter: waiting for conversions");
await Env.Stopping();
