namespace ImageProcessor.Benchmark;

// The scale mode (alone: `scale`): what a factory's months of history do to the API. The database is filled in Postgres
// with generate_series, not through the API, to 100 thousand, 1 million and 10 million jobs (--short: the first size),
// with a photo and a conversion for every 3.3 jobs, spread back from now at 20 photos a second as twenty QA cameras send
// them; 1% of the conversions have a failed job, 0.1% could not be expanded. At each size the client times GET /stats,
// GET /conversions/{id} (ids drawn from the history), GET /photos?source=…&limit=100 and a posted operations file
// through to done, on the cluster of the run with one processor; Postgres explains the stats view at the largest size.
sealed partial class Bench
{
    // A photo, a conversion and 3 or 4 jobs at a time, in the shape the services write them: conversions expanded and
    // counted, jobs finished with outputs; the tallies' triggers count them as they go in.
    const string Fill = """
        INSERT INTO photos (path, format, width, height, bytes, source, created)
        SELECT 'photos/scale-' || i || '.jpeg', 'jpeg', 4000, 3000, 200000, 'cam-' || i % 20, now() - (@photos - i) * interval '50 ms'
        FROM generate_series(1, @photos) AS i;
        INSERT INTO conversions (photo_id, operations, expanded, error, created, jobs, jobs_finished, jobs_failed)
        SELECT id, 'thumb: thumbnail 320x180 | format webp', created + interval '1 s',
            CASE WHEN id % 1000 = 500 THEN 'line 1: unknown operation ''rotat''' END, created,
            jobs, jobs, (id % 100 = 0)::int
        FROM photos, LATERAL (SELECT CASE WHEN id % 1000 = 500 THEN 0 ELSE 3 + (id % 3 = 0)::int END AS jobs) AS made
        WHERE id > @lastPhoto;
        INSERT INTO jobs (conversion_id, name, steps, status, error, output, width, height, duration_ms, updated)
        SELECT c.id, 'out' || k, '[{"Op": "thumbnail", "Arg": "320x180"}]', CASE WHEN failed THEN 'failed' ELSE 'done' END,
            CASE WHEN failed THEN 'improper image header' END, CASE WHEN NOT failed THEN 'outputs/scale-' || c.id || '-' || k || '.webp' END,
            320, 180, 25, c.created + k * interval '300 ms'
        FROM conversions c, generate_series(1, c.jobs) AS k, LATERAL (SELECT k = 1 AND c.jobs_failed = 1 AS failed) AS f
        WHERE c.id > @lastConversion;
        ANALYZE photos, conversions, jobs, tallies;
        """;

    async Task ScaleAsync()
    {
        Stop(Processors()); // those of the modes before: one is started afresh below
        if (tiny == 0)
            tiny = await UploadAsync(await File.ReadAllBytesAsync(Path.Combine(scratch, "tiny.png")), "tiny.png");
        await StartProcessorsAsync(1);
        var rows = new List<string>();
        var plan = "";
        foreach (var size in quick ? [100_000] : new[] { 100_000, 1_000_000, 10_000_000 })
        {
            await using var connection = db.CreateConnection();
            var jobs = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM jobs");
            var (lastPhoto, lastConversion) = await connection.QuerySingleAsync<(long, long)>(
                "SELECT (SELECT coalesce(max(id), 0) FROM photos), (SELECT coalesce(max(id), 0) FROM conversions)");
            Log($"scale: filling to {size} jobs");
            var clock = Stopwatch.StartNew();
            await connection.ExecuteAsync(Fill, new { photos = (size - jobs) * 3 / 10, lastPhoto, lastConversion }, commandTimeout: 0);
            var filled = clock.Elapsed.TotalSeconds;
            var (photos, conversions, jobsNow, bytes) = await connection.QuerySingleAsync<(long, long, long, long)>("""
                SELECT (SELECT count(*) FROM photos), (SELECT count(*) FROM conversions), (SELECT count(*) FROM jobs),
                    pg_database_size(current_database())
                """);
            var ids = (await connection.QueryAsync<long>(
                "SELECT id FROM conversions WHERE id > @lastConversion ORDER BY random() LIMIT 100", new { lastConversion })).ToArray();
            var stats = await TimeAsync(100, _ => http.GetStringAsync("/stats"));
            var conversion = await TimeAsync(100, i => http.GetStringAsync($"/conversions/{ids[i % ids.Length]}"));
            var list = await TimeAsync(100, i => http.GetStringAsync($"/photos?source=cam-{i % 20}&limit=100"));
            var posted = new List<double>();
            for (var i = 0; i < 20; i++)
                posted.Add((await TrivialJobAsync()).Client);
            rows.Add($"| {jobsNow:N0} / {conversions:N0} / {photos:N0} | {bytes >> 20:N0} MiB | {filled:F0} s | {Ms(stats)} | " +
                $"{Ms(conversion)} | {Ms(list)} | {Ms([.. posted])} |");
            plan = string.Join('\n', await connection.QueryAsync<string>("EXPLAIN (ANALYZE, BUFFERS) SELECT document FROM stats"));
        }
        string[] lines =
        [
            $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by `./bench.sh{(quick ? " --short" : "")}{(scaleOnly ? " scale" : "")}` on {Machine()}.",
            "",
            "Each size filled with generate_series (a photo and a conversion for every 3.3 jobs, 20 photos a second back from",
            "now), then each request timed from the client, one at a time: 100 of each GET, 20 operations files through to done",
            "(`flip` on a 32x32 PNG, one processor). Milliseconds, median / p95.",
            "",
            "| jobs / conversions / photos | database | fill | GET /stats | GET /conversions/{id} | GET /photos?source= | POST operations → done |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            .. rows,
            "",
            "`EXPLAIN (ANALYZE, BUFFERS) SELECT document FROM stats` at the largest size:",
            "",
            "```",
            plan,
            "```",
        ];
        WriteSection("scale", lines);
    }

    async Task<double[]> TimeAsync(int count, Func<int, Task> request)
    {
        for (var i = 0; i < 5; i++)
            await request(i); // warm: connections open, plans cached
        var ms = new double[count];
        for (var i = 0; i < count; i++)
        {
            var began = Stopwatch.GetTimestamp();
            await request(i);
            ms[i] = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
        }
        return ms;
    }

    static string Ms(double[] ms) => $"{Percentile(ms, 0.5):F1} / {Percentile(ms, 0.95):F1}";
}
