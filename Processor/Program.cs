var db = NpgsqlDataSource.Create(Env.Database(pool: 2));
var bus = await Bus.ConnectAsync();

// One job at a time on one thread (policy.xml), a processor per core; the next one's message held, so no core waits.
await bus.RunUntilStoppedAsync(await bus.ConsumeAsync("jobs", prefetch: 2, async message =>
{
    // Claim the job. One already done or failed was delivered twice: there is nothing left to do.
    var job = await db.CreateConnection().QuerySingleOrDefaultAsync<(long, string, string, string)?>("""
        UPDATE jobs SET status = 'running', updated = now() FROM conversions, photos
        WHERE jobs.id = @Id AND jobs.status IN ('queued', 'running')
          AND conversions.id = jobs.conversion_id AND photos.id = conversions.photo_id
        RETURNING jobs.id, jobs.steps::text AS steps, photos.path, photos.format
        """, message);
    if (job is not (var id, var json, var photo, var photoFormat))
        return;
    var steps = JsonSerializer.Deserialize<Step[]>(json)!;
    var format = steps.LastOrDefault(step => step.Op == "format")?.Arg ?? photoFormat;
    // Named by job id: a job done twice has one output. A bad image's failure is final: recorded, the message acked.
    var output = $"outputs/{id}.{format}";
    var (width, height, error) = Magick.Convert(
        Path.Combine(Env.Nas, photo), photoFormat, steps, Path.Combine(Env.Nas, output), format);
    await db.CreateConnection().ExecuteAsync("""
        UPDATE jobs SET status = CASE WHEN @error IS NULL THEN 'done' ELSE 'failed' END, error = @error,
            output = CASE WHEN @error IS NULL THEN @output END, width = @width, height = @height,
            duration_ms = extract(epoch FROM now() - updated) * 1000, updated = now()
        WHERE id = @id AND status = 'running' -- not one a late delivery or the dead letters settled meanwhile
        """, new { id, output, error, width, height });
}));
