var db = NpgsqlDataSource.Create(Env.Database);
var bus = await Bus.ConnectAsync();

// One job at a time, on one thread (policy.xml): a machine's cores are shared out by running a processor per core.
var consumer = await bus.ConsumeAsync("jobs", prefetch: 1, async message =>
{
    await using var connection = await db.OpenConnectionAsync();
    // Claim the job. One already done or failed was delivered twice: there is nothing left to do.
    var claimed = await connection.QuerySingleOrDefaultAsync<(long Id, string Steps, string Path, string Format)?>("""
        UPDATE jobs SET status = 'running', updated = now() FROM conversions, photos
        WHERE jobs.id = @Id AND jobs.status IN ('queued', 'running')
          AND conversions.id = jobs.conversion_id AND photos.id = conversions.photo_id
        RETURNING jobs.id, jobs.steps::text AS steps, photos.path, photos.format
        """, message);
    if (claimed is not { } job)
        return;
    var steps = JsonSerializer.Deserialize<Step[]>(job.Steps)!;
    var format = steps.LastOrDefault(step => step.Op == "format")?.Arg ?? job.Format;
    // Named by job id, so a job processed twice overwrites its one output instead of adding a second. A bad image or
    // operation will not improve on a second try: ImageMagick's reason is recorded, and the message acked.
    var output = $"outputs/{job.Id}.{format}";
    var (width, height, error) = Magick.Convert(Path.Combine(Env.Nas, job.Path), job.Format, steps, Path.Combine(Env.Nas, output), format);
    await connection.ExecuteAsync("""
        UPDATE jobs SET status = CASE WHEN @error IS NULL THEN 'done' ELSE 'failed' END, error = @error,
            output = CASE WHEN @error IS NULL THEN @output END, width = @width, height = @height,
            duration_ms = extract(epoch FROM now() - updated) * 1000, updated = now()
        WHERE id = @Id
        """, new { job.Id, output, error, width, height });
});

await bus.RunUntilStoppedAsync(consumer);
