namespace ImageProcessor.Benchmark;

// The main mode: the three operations on the seven photos through the engine, sharp and the cluster with 1 and `cores`
// processors; then the cost of one trivial job, the upload rate and the services' peak memory.
sealed partial class Bench
{
    const string OperationsFile = """
        resize: resize 640x360
        thumb: thumbnail 320x180 | format webp
        gray: autoorient | grayscale | resize 50%
        """;

    async Task MainAsync()
    {
        var (rounds, inputs) = (quick ? 1 : 3, Directory.GetFiles(photos).Order().ToArray());
        var engine = await ChildAsync("engine", photos, rounds, OperationsFile);
        var sharp = await ChildAsync("sharp", photos, rounds, "resize,thumb,gray");
        var (ids, _) = await UploadAsync(Enumerable.Repeat(inputs, rounds).SelectMany(photo => photo), cores);
        List<string[]> rows = [Row("engine", $"{cores} threads", engine.Rate, engine.Ms, engine.PeakKb),
            Row("peer (sharp)", $"{cores} workers", sharp.Rate, sharp.Ms, sharp.PeakKb)];
        var (rates, peakKb) = (new List<double>(), 0L);
        foreach (var processors in new[] { 1, cores })
        {
            var (measured, peak) = await RoundsAsync(processors, 2, ids, OperationsFile); // the first round warms up
            const string Durations = "SELECT duration_ms FROM jobs WHERE conversion_id > @After";
            var ms = await db.CreateConnection().QueryAsync<double>(Durations, measured[1]);
            (rates, peakKb) = ([.. rates, measured[1].Rate], Math.Max(peakKb, peak));
            rows.Add(Row($"cluster P={processors}", $"{processors} processors", measured[1].Rate, [.. ms], peak));
        }
        // On the processors of the last round, warm: trivial jobs one after another, then uploads.
        var tiny = await http.UploadedIdAsync(Path.Combine(scratch, "tiny.png"));
        var after = await db.CreateConnection().ExecuteScalarAsync<long>("SELECT max(id) FROM conversions");
        var client = await TimeAsync(quick ? 20 : 300, _ => TrivialJobAsync(tiny));
        var database = (await db.CreateConnection().QueryAsync<double>("""
            SELECT extract(epoch FROM max(j.updated) - min(c.created)) * 1000
            FROM conversions c JOIN jobs j ON j.conversion_id = c.id
            WHERE c.id > @after GROUP BY c.id ORDER BY c.id OFFSET 5
            """, new { after })).ToArray(); // after TimeAsync's 5 untimed jobs
        var seconds = quick ? 1 : 10;
        var uploads = await UploadRateAsync(seconds);
        var largest = inputs.MaxBy(input => new MagickImageInfo(input) is var image ? image.Width * image.Height : 0)!;
        WriteSection("bench", [
            $"Input: {inputs.Length} photos ({string.Join(", ", inputs.Select(Describe))}), each given",
            "the operations `resize 640x360`, `thumbnail 320x180 | format webp` and",
            $"`autoorient | grayscale | resize 50%`, {rounds} rounds: {engine.Ms.Length} images per mode. The",
            "cluster's photos are uploaded before its clock starts (uploads have their own figure below); its",
            "processors, started afresh, do all the jobs once to warm up, then again, timed from the first operations",
            "POST to the last job's update in the database; its ms per image are the jobs' `duration_ms`.",
            .. Table(["mode", "workers", "images/s", "ms per image, median", "ms per image, p99", "peak memory"], rows),
            .. Table(["ratio", "measured", "target"],
                [$"cluster P={cores} / engine", $"{rates[1] / engine.Rate:F2}", "≥ 0.9"],
                ["engine / peer", $"{engine.Rate / sharp.Rate:F2}", "≥ 1"],
                [$"cluster P={cores} / P=1", $"{rates[1] / rates[0]:F2}", "≥ 1.8"]),
            .. Table(["other figure", "measured", "target"],
                [$"one trivial job (32x32 PNG, `flip`), {client.Length} in a row, operations POST to a GET that says " +
                    "`done`: median", Ms(Percentile(client, 0.5)), "< 10 ms"],
                ["the same, p99", Ms(Percentile(client, 0.99)), "< 50 ms"],
                ["the same in the database, the conversion's insert to the job's result: median",
                    Ms(Percentile(database, 0.5)), ""],
                ["the same in the database, p99", Ms(Percentile(database, 0.99)), ""],
                [$"uploads of a 200 KB JPEG, 16 clients, {seconds} s", $"{uploads:F0} /s", "≥ 300 /s"],
                [$"a processor's peak memory, over the cluster runs (the largest photo is {Describe(largest)})",
                    $"{peakKb >> 10} MiB", "< 300 MiB"],
                ["the API's peak memory, after all of the above", $"{PeakKb(services[0].Id) >> 10} MiB", ""]),
        ]);
    }

    static string[] Row(string mode, string workers, double rate, double[] ms, long peakKb) =>
        [mode, workers, $"{rate:F2}", $"{Percentile(ms, 0.5):F0}", $"{Percentile(ms, 0.99):F0}", $"{peakKb >> 10} MiB"];

    static string Describe(string path)
    {
        var (info, kb) = (new MagickImageInfo(path), new FileInfo(path).Length >> 10);
        return $"{Path.GetFileName(path)} {info.Width}x{info.Height} {$"{info.Format}".ToLower()} {kb} KiB";
    }

    // Uploads of a 200 KB JPEG by 16 clients at once for that many seconds: how many the API stores a second.
    async Task<double> UploadRateAsync(int seconds)
    {
        var bytes = await File.ReadAllBytesAsync(Path.Combine("testing", "data", "aqua", "aqua.jpg"));
        var (count, clock) = (0, Stopwatch.StartNew());
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
        {
            for (; clock.Elapsed.TotalSeconds < seconds; Interlocked.Increment(ref count))
                await http.UploadedIdAsync(bytes, "aqua.jpg");
        }));
        return count / clock.Elapsed.TotalSeconds;
    }
}
