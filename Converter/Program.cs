using System.Text.Json;
using Dapper;
using ImageProcessor;
using Npgsql;

// Database and bus
var db = NpgsqlDataSource.Create(Env.Database);
var bus = await Bus.ConnectAsync();

// Expand each conversion into one job per output line. A redelivered conversion is harmless: a job is unique per
// (conversion, name), and every job still queued is published again, so a crash between the two steps loses nothing.
await bus.ConsumeAsync<ConversionMessage>("conversions", prefetch: 8, async message =>
{
    await using var connection = await db.OpenConnectionAsync();
    var text = await connection.QuerySingleAsync<string>(
        "SELECT operations FROM conversions WHERE id = @ConversionId", message);
    await connection.ExecuteAsync(
        "INSERT INTO jobs (conversion_id, name, steps) VALUES (@ConversionId, @Name, @Steps::jsonb) ON CONFLICT DO NOTHING",
        Operations.Parse(text).Select(output =>
            new { message.ConversionId, output.Name, Steps = JsonSerializer.Serialize(output.Steps) }));
    foreach (var job in await connection.QueryAsync<long>(
        "SELECT id FROM jobs WHERE conversion_id = @ConversionId AND status = 'queued' ORDER BY id", message))
        await bus.PublishAsync("jobs", new JobMessage(job));
});

await Task.Delay(Timeout.Infinite);
