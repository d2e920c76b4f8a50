namespace ImageProcessor.Benchmark;

// The scale mode: what a factory's months of history do to the API. The database is filled in Postgres, not through
// the API, to 100 thousand, 1 million and 10 million jobs (--short: the first size); at each size the client times
// GET /stats, GET /conversions/{id} (ids drawn from the history), GET /photos?source=…&limit=100 and an operations
// file through to done on one processor; Postgres explains the stats view at the largest size.
sealed partial class Bench
{
    // A photo, a conversion and 3 or 4 jobs at a time, in the shape the services write them (conversions expanded and
    // counted, jobs finished with outputs), 20 photos a second back from now as twenty QA cameras send them; 1% of the
    // conversions have a failed job, 0.1% could not be expanded. The tallies' triggers count them as they go in.
    const string Fill = """
        INSERT INTO photos (path, format, width, height, bytes, source, created)
        SELECT 'photos/scale-' || i || '.jpeg', 'jpeg', 4000, 3000, 200000, 'cam-' || i % 20,
            now() - (@photos - i) * interval '50 ms'
        FROM generate_series(1, @photos) AS i;
        INSERT INTO conversions (photo_id, operations, expanded, error, created, jobs, jobs_finished, jobs_failed)
        SELECT id, 'thumb: thumbnail 320x180 | format webp', created + interval '1 s',
            CASE WHEN id % 1000 = 500 THEN 'line 1: unknown operation ''rotat''' END, created,
            jobs, jobs, (id % 100 = 0)::int
        FROM photos, LATERAL (SELECT CASE WHEN id % 1000 = 500 THEN 0 ELSE 3 + (id % 3 = 0)::int END AS jobs) AS made
        WHERE id > @lastPhoto;
        INSERT INTO jobs (conversion_id, name, steps, status, error, output, width, height, duration_ms, updated)
        SELECT c.id, 'out' || k, '[{"Op": "thumbnail", "Arg": "320x180"}]',
            CASE WHEN failed THEN 'failed' ELSE 'done' END, CASE WHEN failed THEN 'improper image header' END,
            CASE WHEN NOT failed THEN 'outputs/scale-' || c.id || '-' || k || '.webp' END,
            320, 180, 25, c.created + k * interval '300 ms'
        FROM conversions c, generate_series(1, c.jobs) AS k, LATERAL (SELECT k = 1 AND c.jobs_failed = 1 AS failed) AS f
        WHERE c.id > @lastConversion;
        ANALYZE photos, conversions, jobs, tallies;
        """;

    async Task ScaleAsync()
    {
        var tiny = await http.UploadedIdAsync(Path.Combine(scratch, "tiny.png"));
        await RoundsAsync(1, 0, [], ""); // one processor, started afresh
        var (rows, plan) = (new List<string[]>(), "");
        foreach (var size in quick ? [100_000] : new[] { 100_000, 1_000_000, 10_000_000 })
        {
            await using var connection = db.CreateConnection();
            var (jobs, lastPhoto, lastConversion) = await connection.QuerySingleAsync<(long, long, long)>(
                "SELECT (SELECT count(*) FROM jobs), (SELECT max(id) FROM photos), (SELECT max(id) FROM conversions)");
            var clock = Stopwatch.StartNew();
            var added = new { photos = (size - jobs) * 3 / 10, lastPhoto, lastConversion };
            await connection.ExecuteAsync(Fill, added, commandTimeout: 0);
            var filled = clock.Elapsed.TotalSeconds;
            const string Sample = "SELECT id FROM conversions WHERE id > @lastConversion ORDER BY random() LIMIT 100";
            var ids = (await connection.QueryAsync<long>(Sample, new { lastConversion })).ToArray();
            var stats = await TimeAsync(100, _ => http.GetStringAsync("/stats"));
            var conversion = await TimeAsync(100, i => http.GetStringAsync($"/conversions/{ids[i % ids.Length]}"));
            var list = await TimeAsync(100, i => http.GetStringAsync($"/photos?source=cam-{i % 20}&limit=100"));
            var posted = await TimeAsync(20, _ => TrivialJobAsync(tiny));
            var (inPhotos, inConversions, inJobs, bytes) = await connection.QuerySingleAsync<(int, int, int, long)>("""
                SELECT (SELECT count(*) FROM photos), (SELECT count(*) FROM conversions), (SELECT count(*) FROM jobs),
                    pg_database_size(current_database())
                """);
            rows.Add([$"{inJobs:N0} / {inConversions:N0} / {inPhotos:N0}", $"{bytes >> 20:N0} MiB", $"{filled:F0} s",
                Ms(stats), Ms(conversion), Ms(list), Ms(posted)]);
            const string Explain = "EXPLAIN (ANALYZE, BUFFERS) SELECT document FROM stats";
            plan = string.Join('\n', await connection.QueryAsync<string>(Explain));
        }
        WriteSection("scale", [
            "Each size filled with generate_series (a photo and a conversion for every 3.3 jobs, 20 photos a second",
            "back from now), then each request timed from the client, one at a time: 100 of each GET, 20 operations",
            "files through to done (`flip` on a 32x32 PNG, one processor). Milliseconds, median / p95.",
            .. Table(["jobs / conversions / photos", "database", "fill", "GET /stats", "GET /conversions/{id}",
                "GET /photos?source=", "POST operations → done"], rows),
            "",
            "`EXPLAIN (ANALYZE, BUFFERS) SELECT document FROM stats` at the largest size:",
            "",
            $"```\n{plan}\n```",
        ]);
    }

    static string Ms(double[] ms) => $"{Percentile(ms, 0.5):F1} / {Percentile(ms, 0.95):F1}";
}
