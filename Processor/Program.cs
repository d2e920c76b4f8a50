using System.Diagnostics;
using System.Text.Json;
using Dapper;
using ImageProcessor;
using Npgsql;

// Database
await using var db = NpgsqlDataSource.Create(Env.Database);

// Bus
await using var bus = await Bus.ConnectAsync();

Directory.CreateDirectory(Path.Combine(Env.Nas, "outputs"));

// One job at a time: ImageMagick already spreads one image over the cores it is allowed.
await bus.ConsumeAsync<JobMessage>("jobs", prefetch: 1, async message =>
{
    await using var connection = await db.OpenConnectionAsync();
    // Claim the job. One already done or failed was delivered twice: there is nothing left to do.
    var job = await connection.QuerySingleOrDefaultAsync<ClaimedJob>("""
        UPDATE jobs SET status = 'running', updated = now()
        FROM conversions, photos
        WHERE jobs.id = @JobId AND jobs.status IN ('queued', 'running')
          AND conversions.id = jobs.conversion_id AND photos.id = conversions.photo_id
        RETURNING jobs.id, jobs.steps::text AS steps, photos.path, photos.format
        """, message);
    if (job is null)
        return;
    var clock = Stopwatch.StartNew();
    try
    {
        var steps = JsonSerializer.Deserialize<Step[]>(job.Steps)!;
        var format = steps.LastOrDefault(step => step.Op == "format")?.Arg ?? job.Format;
        // Named by job id, so a job processed twice overwrites its one output instead of adding a second.
        var output = $"outputs/{job.Id}.{format}";
        using var image = Image.Read(Path.Combine(Env.Nas, job.Path), job.Format);
        foreach (var step in steps)
            image.Apply(step);
        image.Write(Path.Combine(Env.Nas, output), format);
        await connection.ExecuteAsync("""
            UPDATE jobs SET status = 'done', output = @output, width = @Width, height = @Height,
                duration_ms = @ms, error = NULL, updated = now() WHERE id = @Id
            """, new { job.Id, output, image.Width, image.Height, ms = clock.ElapsedMilliseconds });
    }
    catch (MagickException e)
    {
        // A bad image or operation will not improve on a second try: record ImageMagick's reason and ack.
        await connection.ExecuteAsync(
            "UPDATE jobs SET status = 'failed', error = @Message, duration_ms = @ms, updated = now() WHERE id = @Id",
            new { job.Id, e.Message, ms = clock.ElapsedMilliseconds });
    }
});

Console.WriteLine("processor: waiting for jobs");
await Env.Stopping();

sealed record ClaimedJob(long Id, string Steps, string Path, string Format);
