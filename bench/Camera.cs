namespace ImageProcessor.Benchmark;

// The camera mode: what QA cameras send (2 MP JPEGs, one resize each) through the engine, sharp and the cluster with
// one processor per core, round after round: the first on processors just started, the others warm.
sealed partial class Bench
{
    // Every claim of a job, counted by a trigger in the benchmark's own database: a job claimed twice ran twice.
    const string CountClaims = """
        CREATE TABLE IF NOT EXISTS bench_claims (job_id bigint NOT NULL);
        CREATE OR REPLACE FUNCTION bench_claim() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN INSERT INTO bench_claims VALUES (NEW.id); RETURN NULL; END $$;
        CREATE OR REPLACE TRIGGER bench_claims AFTER UPDATE OF status ON jobs
            FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION bench_claim();
        """;

    async Task CameraAsync()
    {
        var (camera, rounds, clients) = (Path.Combine(photos, "camera"), quick ? 1 : 3, cores * 4);
        var files = Directory.GetFiles(camera).Order().Where((_, i) => !quick || i % 4 == 0).ToArray(); // --short: 48
        var engine = await ChildAsync("engine", camera, rounds, "resize 640x360");
        var sharp = await ChildAsync("sharp", camera, rounds, "resize");
        await db.CreateConnection().ExecuteAsync(CountClaims);
        var (ids, uploadRate) = await UploadAsync(files, clients);
        var (measured, peakKb) = await RoundsAsync(cores, rounds + 1, ids, "resize 640x360");

        // The checks: every job done, its output read back as a 640x360 JPEG, none claimed twice, the memory.
        var after = measured[0].After;
        var outputs = (await db.CreateConnection().QueryAsync<string>(
            "SELECT output FROM jobs WHERE conversion_id > @after AND status = 'done'", new { after })).ToList();
        var sized = outputs.Count(output => new MagickImageInfo(Path.Combine(Nas, output))
            is { Width: 640, Height: 360, Format: MagickFormat.Jpeg });
        var (claimed, twice) = await db.CreateConnection().QuerySingleAsync<(long, long)>("""
            SELECT count(*), count(*) FILTER (WHERE claims > 1) FROM (SELECT count(*) AS claims FROM bench_claims
                WHERE job_id IN (SELECT id FROM jobs WHERE conversion_id > @after) GROUP BY job_id) AS jobs
            """, new { after });
        var expected = measured.Sum(round => round.Jobs);

        // The report: a column per round, then the warm ones together; CPU per job by part.
        Round[][] columns = [.. measured.Select(round => new[] { round }), [.. measured.Skip(1)]];
        var (first, warm) = (columns[0], columns[^1]);
        double Rate(Round[] some) => some.Sum(round => round.Jobs) / some.Sum(round => round.Seconds);
        double PerJob(Round[] some, Func<Round, double> cpu) => 1000 * some.Sum(cpu) / some.Sum(round => round.Jobs);
        double Idle(Round round) => cores * round.Seconds - round.Cpu["machine"];
        double Others(Round round) => round.Cpu["machine"] - Parts.Sum(part => round.Cpu.GetValueOrDefault(part));
        string[] Line(string name, Func<Round, double> cpu) => [name, .. columns.Select(some => Ms(PerJob(some, cpu)))];
        var processors = PerJob(warm, round => round.Cpu["Processor"]);
        var kb = files.Select(file => new FileInfo(file).Length >> 10).Order().ToArray();
        WriteSection("camera", [
            $"Input: {files.Length} JPEGs of 1920x1080 at quality 88 ({kb[0]}-{kb[^1]} KiB, median",
            $"{kb[kb.Length / 2]} KiB), cut from the 12 photos of mate-backgrounds' nature folder; an operations file,",
            $"`resize 640x360`, per photo. The cluster: the photos uploaded first ({uploadRate:F0} /s, {clients}",
            $"clients), then P = {cores} processors started afresh and {measured.Count} rounds, each posting the",
            $"operations by {clients} keep-alive clients, timed by Postgres's clock from its first post to its last",
            "job's update. Round 1 is the first jobs of fresh processors.",
            .. Table(["mode", "images", "images/s", "CPU per image", "ms per image, median"],
                [$"engine, `Magick.Convert`, {cores} threads", $"{engine.Ms.Length}", $"{engine.Rate:F1}",
                    Ms(engine.CpuMs), $"{Percentile(engine.Ms, 0.5):F1}"],
                [$"sharp (libvips), {cores} workers", $"{sharp.Ms.Length}", $"{sharp.Rate:F1}", Ms(sharp.CpuMs),
                    $"{Percentile(sharp.Ms, 0.5):F1}"]),
            .. Table(["cluster, round", .. measured.Select((_, i) => $"{i + 1}"), $"warm: 2-{measured.Count}"], [
                ["images/s", .. columns.Select(some => $"{Rate(some):F1}")],
                .. Parts.Select(part => Line($"CPU per job: {part}", round => round.Cpu.GetValueOrDefault(part))),
                Line("everything else: the machine's non-idle CPU less the above", Others),
                Line($"idle: {cores} cores × the round's seconds less the machine's non-idle CPU", Idle)]),
            .. Table(["figure", "measured", "target"],
                ["cluster warm / engine", $"{Rate(warm) / engine.Rate:F2}", "≥ 0.9"],
                [$"cluster, the first {first[0].Jobs} jobs / engine", $"{Rate(first) / engine.Rate:F2}", "≥ 0.8"],
                ["Postgres's CPU per warm job", Ms(PerJob(warm, round => round.Cpu["Postgres"])), "≤ 1.2 ms"],
                ["idle per warm job", Ms(PerJob(warm, Idle)), "≤ 0.5 ms"],
                ["processors' CPU per warm job / engine's CPU per image", $"{processors / engine.CpuMs:F2}", ""],
                ["engine / sharp", $"{engine.Rate / sharp.Rate:F2}", ""]),
            .. Table(["check", "result"],
                [$"jobs done, of the {expected} posted", $"{outputs.Count}"],
                ["outputs read back as 640x360 JPEGs", $"{sized}"],
                [$"jobs processed more than once (claims counted by a trigger: {claimed} jobs claimed)", $"{twice}"],
                ["a processor's peak memory (under 300 MiB)", $"{peakKb >> 10} MiB"]),
        ]);
        if (outputs.Count != expected || sized != expected || twice > 0 || peakKb >= 300 << 10)
            throw new InvalidOperationException("camera: a check failed; the table above says which");
    }
}
