namespace ImageProcessor.Benchmark;

// The camera mode: the QA cameras' workload through the cluster, round after round.
sealed partial class Bench
{
    // The camera mode: every photo uploaded by cores x 4 keep-alive clients; then P = cores processors started afresh and,
    // round after round, one operations file `resize 640x360` posted per photo by as many clients, each round timed from
    // its first post until its last job is done. The first round is the processors' first jobs (nothing compiled yet, no
    // connection open yet: no warm-up), the others are warm. Every job must end done with a 640x360 JPEG, read back.
    async Task CameraAsync()
    {
        Stop(Processors()); // the last cluster run's, if any: P = cores are started afresh below
        var clients = cores * 4;
        var files = Directory.GetFiles(cameraPhotos).Order().Where((_, i) => !quick || i % 4 == 0).ToArray(); // --short: 48
        // Every claim of a job, counted by a trigger in the benchmark's own database: a job claimed twice was processed twice.
        await db.CreateConnection().ExecuteAsync("""
            CREATE TABLE IF NOT EXISTS bench_claims (job_id bigint NOT NULL);
            CREATE OR REPLACE FUNCTION bench_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO bench_claims VALUES (NEW.id); RETURN NULL; END $$;
            CREATE OR REPLACE TRIGGER bench_claims AFTER UPDATE OF status ON jobs FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION bench_claim();
            """);
        var ids = new ConcurrentBag<long>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = clients },
            async (file, _) => ids.Add(await UploadAsync(await File.ReadAllBytesAsync(file), Path.GetFileName(file))));
        var uploadRate = files.Length / clock.Elapsed.TotalSeconds;
        // This benchmark's own code, hot from the uploads, is recompiled in the background for a few seconds: not while the
        // processors are measured. (The API and the converter idle meanwhile too, as a cluster between two bursts does.)
        await Task.Delay(TimeSpan.FromSeconds(quick ? 1 : 5));
        var firstJob = await db.CreateConnection().ExecuteScalarAsync<long>("SELECT coalesce(max(id), 0) FROM jobs");
        var workers = Enumerable.Range(0, cores).Select(_ => Start("Processor")).ToList();
        started.AddRange(workers);
        await WaitUntilAsync(async () => await ConsumersAsync("jobs") == cores);
        var rounds = new List<CameraRound>();
        for (var round = 0; round <= cameraRounds; round++)
            rounds.Add(await CameraRoundAsync([.. ids.Order()], clients));

        var jobs = (await db.CreateConnection().QueryAsync<(long Id, string Status, string? Error, string? Output)>(
            "SELECT id, status, error, output FROM jobs WHERE id > @firstJob", new { firstJob })).ToList();
        var done = jobs.Count(job => job.Status == "done");
        var sized = jobs.Count(job => job.Output is { } output && new ImageMagick.MagickImageInfo(Path.Combine(nas, output)) is { Width: 640, Height: 360, Format: ImageMagick.MagickFormat.Jpeg });
        var (claimed, twice) = await db.CreateConnection().QuerySingleAsync<(long, long)>("""
            SELECT count(*), count(*) FILTER (WHERE claims > 1)
            FROM (SELECT count(*) AS claims FROM bench_claims WHERE job_id > @firstJob GROUP BY job_id) AS jobs
            """, new { firstJob });
        var expected = rounds.Sum(round => round.Jobs);
        WriteCamera(files, uploadRate, rounds, (expected, jobs.Count, done, sized, claimed, twice), workers.Max(worker => PeakKb(worker.Id)));
        if (done != expected || sized != expected || twice > 0)
            throw new InvalidOperationException($"camera mode: {done} of {expected} jobs done, {sized} outputs 640x360, {twice} processed twice: " +
                string.Join("; ", jobs.Where(job => job.Error is not null).Select(job => job.Error).Distinct().Take(3)));
    }

    // One round of the camera mode: the operations posted, every job done, and the CPU each process used meanwhile.
    async Task<CameraRound> CameraRoundAsync(long[] ids, int clients)
    {
        await using var poll = await db.OpenConnectionAsync(); // one connection, kept, for the many polls of the round
        var first = await poll.ExecuteScalarAsync<long>("SELECT coalesce(max(id), 0) FROM conversions");
        var (before, machineBefore) = (started.ToDictionary(p => p.Id, p => CpuTicks(p.Id)), MachineTicks());
        var servers = new[] { ("Postgres", "db"), ("RabbitMQ", "bus") }.SelectMany(server => ServerPids(Path.Combine(scratch, server.Item2))
            .Select(pid => (Name: server.Item1, Pid: pid))).Append((Name: "this benchmark's client", Pid: Environment.ProcessId))
            .Select(server => (server.Name, server.Pid, Ticks: CpuTicks(server.Pid))).ToList();
        var switches = started.ToDictionary(p => p.Id, p => Switches(p.Id));
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = clients },
            async (id, _) => await PostAsync($"/photos/{id}/operations", CameraOperations));
        var posted = clock.Elapsed.TotalSeconds;
        const string Finished = "SELECT count(*) FROM jobs WHERE conversion_id > @first AND status IN ('done', 'failed')";
        await WaitUntilAsync(async () => await poll.ExecuteScalarAsync<long>(Finished, new { first }) == ids.Length);
        var seconds = clock.Elapsed.TotalSeconds;
        var cpu = started.Where(p => before.ContainsKey(p.Id)).GroupBy(p => p.StartInfo.Environment["PROJECT"]!)
            .ToDictionary(g => g.Key, g => g.Sum(p => CpuTicks(p.Id) - before[p.Id]) / 100.0);
        foreach (var server in servers.GroupBy(server => server.Name))
            cpu[server.Key] = server.Sum(s => (TryCpuTicks(s.Pid) ?? s.Ticks) - s.Ticks) / 100.0;
        var round = new CameraRound(ids.Length, seconds, posted, cpu, (MachineTicks() - machineBefore) / 100.0);
        Log($"camera round: the processors' context switches per job: {(double)started.Where(p => p.StartInfo.Environment["PROJECT"] == "Processor")
            .Sum(p => Switches(p.Id) - switches[p.Id]) / ids.Length:F1}");
        Log($"camera round: {ids.Length / seconds:F1} images/s, CPU per job: {string.Join(", ", cpu.Select(c => $"{c.Key} {1000 * c.Value / ids.Length:F1} ms"))}, " +
            $"all {1000 * round.Machine / ids.Length:F1} ms");
        return round;
    }
}

sealed record CameraRound(int Jobs, double Seconds, double Posted, Dictionary<string, double> Cpu, double Machine);
