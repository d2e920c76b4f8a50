namespace ImageProcessor.Benchmark;

/// <summary>One run: its modes, each a section of BENCHMARKS.md (main: the seven photos through the engine, sharp and
/// the cluster; camera: the QA cameras' 2 MP JPEGs; scale: a factory's history), on one API and converter.</summary>
sealed class Bench(string[] args)
{
    const string Address = "http://127.0.0.1:48080", Key = "bench";
    // Where the CPU goes: the parts measured, then the rest of the machine's non-idle CPU and the cores left idle.
    static readonly string[] Parts =
        ["Processor", "Api", "Converter", "Postgres", "RabbitMQ", "this benchmark's client", "everything else", "idle"];
    readonly string photos = args[0], scratch = args[1], nas = Path.Combine(args[1], "nas"), report = args[2];
    readonly bool quick = args.Contains("--short");
    readonly int rounds = args.Contains("--short") ? 1 : 3; // each photo's passes through the engine and sharp
    readonly int cores = Environment.ProcessorCount;
    readonly HttpClient http = new()
        { BaseAddress = new(Address), DefaultRequestHeaders = { Authorization = new("Bearer", Key) } };
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));
    readonly List<Process> services = [];

    public async Task<int> RunAsync()
    {
        Func<Task>[] all = [MainAsync, CameraAsync, ScaleAsync];
        var modes = args.Contains("camera") ? [CameraAsync] : args.Contains("scale") ? [ScaleAsync] : all;
        services.AddRange([Start("Api"), Start("Converter")]);
        await WaitAsync(async () => (await http.GetAsync("/healthz")).IsSuccessStatusCode, "the API did not come up");
        foreach (var mode in modes)
            await mode();
        return 0;
    }

    async Task MainAsync()
    {
        const string OperationsFile = """
            resize: resize 640x360
            thumb: thumbnail 320x180 | format webp
            gray: autoorient | grayscale | resize 50%
            """;
        var inputs = Directory.GetFiles(photos).Order().ToArray();
        var engine = await ChildAsync("engine", photos, rounds, OperationsFile);
        var sharp = await ChildAsync("sharp", photos, rounds, "resize,thumb,gray");
        var (ids, _) = await UploadAsync(Enumerable.Repeat(inputs, rounds).SelectMany(photo => photo), cores);
        var cluster = new List<Result>();
        foreach (var processors in new[] { 1, cores })
        {
            var (measured, peak) = await RoundsAsync(processors, 2, ids, OperationsFile); // the first round warms up
            const string Durations = "SELECT duration_ms FROM jobs WHERE conversion_id > @After";
            var ms = await db.CreateConnection().QueryAsync<double>(Durations, measured[1]);
            cluster.Add(new(measured[1].Seconds, [.. ms], peak, measured[1].Cpu["Processor"]));
        }
        // On the processors of the last round, warm: trivial jobs one after another, then uploads.
        var tiny = await http.UploadedIdAsync(Path.Combine(scratch, "tiny.png"));
        var client = await TimeAsync(quick ? 20 : 300, _ => TrivialJobAsync(tiny));
        var database = (await db.CreateConnection().QueryAsync<double>("""
            SELECT extract(epoch FROM max(j.updated) - min(c.created)) * 1000
            FROM conversions c JOIN jobs j ON j.conversion_id = c.id
            WHERE c.photo_id = @tiny GROUP BY c.id ORDER BY c.id OFFSET 5
            """, new { tiny })).ToArray(); // after TimeAsync's 5 untimed jobs
        var (_, uploads) = await UploadAsync(Enumerable.Repeat("testing/data/aqua/aqua.jpg", quick ? 500 : 5000), 16);
        var largest = inputs.MaxBy(input => new MagickImageInfo(input) is var image ? image.Width * image.Height : 0)!;
        var peakKb = cluster.Max(processors => processors.PeakKb);
        WriteSection("bench",
            Table(Modes, Row($"engine, {cores} threads", engine), Row($"sharp, {cores} workers", sharp),
                Row("cluster P=1", cluster[0]), Row($"cluster P={cores}", cluster[1])),
            Table(["figure", "measured", "target"],
                [$"cluster P={cores} / engine", $"{cluster[1].Rate / engine.Rate:F2}", "≥ 0.9"],
                ["engine / sharp", $"{engine.Rate / sharp.Rate:F2}", "≥ 1"],
                [$"cluster P={cores} / P=1", $"{cluster[1].Rate / cluster[0].Rate:F2}", "≥ 1.8"],
                ["trivial job, client: median / p99, ms", Ms(client, 0.99), "< 10 / < 50"],
                ["trivial job, database: median / p99, ms", Ms(database, 0.99), ""],
                ["uploads of a 200 KB JPEG, 16 clients", $"{uploads:F0} /s", "≥ 300 /s"],
                [$"processor peak memory (largest: {Path.GetFileName(largest)})", $"{peakKb >> 10} MiB", "< 300 MiB"],
                ["API peak memory", $"{PeakKb(services[0].Id) >> 10} MiB", ""]));
    }

    static readonly string[] Modes = ["mode", "images/s", "ms per image, median / p99", "CPU per image", "peak memory"];
    static string[] Row(string mode, Result run) =>
        [mode, $"{run.Rate:F1}", Ms(run.Ms, 0.99), Ms(run.CpuMs), $"{run.PeakKb >> 10} MiB"];

    async Task CameraAsync()
    {
        // Every claim of a job, counted by a trigger in the benchmark's own database: a job claimed twice ran twice.
        const string CountClaims = """
            CREATE TABLE IF NOT EXISTS bench_claims (job_id bigint NOT NULL);
            CREATE OR REPLACE FUNCTION bench_claim() RETURNS trigger LANGUAGE plpgsql
                AS $$ BEGIN INSERT INTO bench_claims VALUES (NEW.id); RETURN NULL; END $$;
            CREATE OR REPLACE TRIGGER bench_claims AFTER UPDATE OF status ON jobs
                FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION bench_claim();
            """;
        var camera = Path.Combine(photos, "camera");
        var files = Directory.GetFiles(camera).Order().Where((_, i) => !quick || i % 4 == 0).ToArray(); // --short: 48
        var engine = await ChildAsync("engine", camera, rounds, "resize 640x360");
        var sharp = await ChildAsync("sharp", camera, rounds, "resize");
        await db.CreateConnection().ExecuteAsync(CountClaims);
        var (ids, uploads) = await UploadAsync(files, cores * 4);
        var (measured, peakKb) = await RoundsAsync(cores, rounds + 1, ids, "resize 640x360");
        var after = measured[0].After;
        var outputs = (await db.CreateConnection().QueryAsync<string>(
            "SELECT output FROM jobs WHERE conversion_id > @after AND status = 'done'", new { after })).ToList();
        var sized = outputs.Count(output => new MagickImageInfo(Path.Combine(nas, output))
            is { Width: 640, Height: 360, Format: MagickFormat.Jpeg });
        var (claimed, twice) = await db.CreateConnection().QuerySingleAsync<(long, long)>("""
            SELECT count(DISTINCT job_id), count(*) - count(DISTINCT job_id) FROM bench_claims
            WHERE job_id IN (SELECT id FROM jobs WHERE conversion_id > @after)
            """, new { after });
        var expected = measured.Sum(round => round.Jobs);
        var warm = Round.Sum([.. measured.Skip(1)]); // the first round was on processors just started
        Round[] columns = [.. measured, warm];
        string[] Line(string part) => [$"CPU per job: {part}", .. columns.Select(round => Ms(round.PerJobMs(part)))];
        WriteSection("camera",
            Table(Modes, Row($"engine, {cores} threads", engine), Row($"sharp, {cores} workers", sharp)),
            Table([$"cluster P={cores}", .. measured.Select((_, i) => $"round {i + 1}"), "warm"],
                [["images/s", .. columns.Select(round => $"{round.Rate:F1}")], .. Parts.Select(Line)]),
            Table(["figure", "measured", "target"],
                [$"uploads, {cores * 4} clients", $"{uploads:F0} /s", ""],
                ["warm / engine", $"{warm.Rate / engine.Rate:F2}", "≥ 0.9"],
                ["first round / engine", $"{measured[0].Rate / engine.Rate:F2}", "≥ 0.8"],
                ["Postgres per warm job", Ms(warm.PerJobMs("Postgres")), "≤ 1.2 ms"],
                ["idle per warm job", Ms(warm.PerJobMs("idle")), "≤ 0.5 ms"],
                ["processors' CPU per warm job / engine's", $"{warm.PerJobMs("Processor") / engine.CpuMs:F2}", ""],
                ["engine / sharp", $"{engine.Rate / sharp.Rate:F2}", ""],
                ["jobs done / outputs 640x360 JPEGs", $"{outputs.Count} / {sized}", $"{expected} / {expected}"],
                [$"claims again of jobs claimed ({claimed})", $"{twice}", "0"],
                ["processor peak memory", $"{peakKb >> 10} MiB", "< 300 MiB"]));
        if (outputs.Count != expected || sized != expected || twice > 0 || peakKb >= 300 << 10)
            throw new InvalidOperationException("camera: a check failed; the table above says which");
    }

    // A photo, a conversion and 3 or 4 jobs at a time as the services write them, 20 photos a second back from now as
    // QA cameras send them; 1% with a failed job, 0.1% not expanded. The tallies' triggers count them as they go in.
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
        await RoundsAsync(1, 0, [], "flip"); // one processor, started afresh
        var rows = new List<string[]>();
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
        }
        const string Explain = "EXPLAIN (ANALYZE, BUFFERS) SELECT document FROM stats";
        var plan = await db.CreateConnection().QueryAsync<string>(Explain);
        WriteSection("scale",
            Table(["jobs / conversions / photos", "database", "fill", "GET /stats", "GET /conversions/{id}",
                "GET /photos?source=", "POST operations → done"], rows),
            $"Milliseconds, median / p95. `{Explain}` at the largest size:",
            $"```\n{string.Join('\n', plan)}\n```");
    }

    static string Ms(double[] ms, double p = 0.95) => $"{Percentile(ms, 0.5):F1} / {Percentile(ms, p):F1}";

    Process Start(string project) => ClusterCalls.StartService(
        Path.Combine(scratch, "services", project, $"{project}.dll"),
        Path.Combine(scratch, $"{project}-{services.Count}.log"),
        ("NAS", nas), ("API_KEY", Key), ("ASPNETCORE_URLS", Address));

    async Task<(long[] Ids, double Rate)> UploadAsync(IEnumerable<string> files, int clients)
    {
        var ids = new ConcurrentBag<long>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = clients },
            async (file, _) => ids.Add(await http.UploadedIdAsync(file)));
        return ([.. ids.Order()], ids.Count / clock.Elapsed.TotalSeconds);
    }

    // Processors started afresh, ready once the broker counts them as consumers; then rounds of posts by cores × 4
    // clients, each timed by Postgres's clock (how often we poll does not bias it), the CPU read around it.
    async Task<(List<Round> Rounds, long PeakKb)> RoundsAsync(int processors, int count, long[] ids, string operations)
    {
        var old = services.Where(service => service.StartInfo.Environment["PROJECT"] == "Processor").ToList();
        old.ForEach(processor => processor.Kill());
        await Task.WhenAll(old.Select(processor => processor.WaitForExitAsync()));
        services.RemoveAll(old.Contains);
        var started = Enumerable.Range(0, processors).Select(_ => Start("Processor")).ToArray();
        services.AddRange(started);
        await using var bus = await new ConnectionFactory { Uri = new(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await bus.CreateChannelAsync();
        await WaitAsync(async () => await channel.ConsumerCountAsync("jobs") == processors, "no processors");
        var jobs = ids.Length * Operations.Parse(operations).Count;
        const string Begin = "SELECT max(id), clock_timestamp() FROM conversions";
        const string Done = "SELECT count(*) FROM jobs WHERE conversion_id > @after AND status IN ('done', 'failed')";
        const string End = "SELECT max(updated), min(error) FROM jobs WHERE conversion_id > @after";
        var measured = new List<Round>();
        await using var poll = await db.OpenConnectionAsync();
        while (measured.Count < count)
        {
            var (after, began) = await poll.QuerySingleAsync<(long, DateTime)>(Begin);
            var before = Cpu();
            await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = cores * 4 },
                async (photo, _) => await http.PostConversionAsync(photo, operations));
            await WaitAsync(async () => await poll.ExecuteScalarAsync<long>(Done, new { after }) == jobs, "hung");
            var cpu = Cpu();
            var (ended, error) = await poll.QuerySingleAsync<(DateTime, string?)>(End, new { after });
            if (error is not null)
                throw new InvalidOperationException($"a job failed: {error}");
            var seconds = (ended - began).TotalSeconds;
            var used = cpu.ToDictionary(part => part.Key, part => part.Value - before[part.Key]);
            used["everything else"] = used["machine"] - Parts[..^2].Sum(used.GetValueOrDefault);
            used["idle"] = cores * seconds - used["machine"];
            measured.Add(new(jobs, seconds, used, after));
        }
        return (measured, started.Max(processor => PeakKb(processor.Id)));
    }

    // The CPU seconds each part has used so far, from /proc in ticks of 10 ms: a service's or this benchmark's
    // process's utime and stime; for Postgres and RabbitMQ, those and the reaped children's of every process in or
    // below the groups bench.sh started them in (SERVER_GROUPS); the machine's, /proc/stat's but idle and iowait.
    Dictionary<string, double> Cpu()
    {
        var pids = Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(pid => pid!.All(char.IsAsciiDigit));
        var stats = pids.Select(pid => (pid!, Stat(pid!)!)).Where(process => process.Item2 is not null).ToDictionary();
        long Ticks(string pid, int n) => stats.TryGetValue(pid, out var stat) ? stat[12..(12 + n)].Sum(long.Parse) : 0;
        var cpu = services.GroupBy(p => p.StartInfo.Environment["PROJECT"]!)
            .ToDictionary(project => project.Key, project => project.Sum(p => Ticks($"{p.Id}", 2)));
        foreach (var server in Env.Get("SERVER_GROUPS", "").Split(' ').Select(server => server.Split('=')))
        {
            var members = server[1].Split(',').ToHashSet(); // the groups' leaders, then every process in or below them
            bool Joins(string[] stat) => members.Contains(stat[2]) || members.Contains(stat[3]); // its parent or group
            while (stats.Keys.Where(pid => !members.Contains(pid) && Joins(stats[pid])).ToList() is [_, ..] found)
                members.UnionWith(found);
            cpu[server[0]] = members.Sum(pid => Ticks(pid, 4));
        }
        cpu["this benchmark's client"] = Ticks($"{Environment.ProcessId}", 2);
        var machine = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..9];
        cpu["machine"] = machine.Select(long.Parse).Where((_, i) => i is not (3 or 4)).Sum();
        return cpu.ToDictionary(part => part.Key, part => part.Value / 100.0);
    }

    // The fields of /proc/PID/stat after the command's name (field n of proc(5) is [n - 2]), or null once it ended.
    static string[]? Stat(string pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].Split(' '); }
        catch (IOException) { return null; }
    }

    public static long PeakKb(int pid) => Process.GetProcessById(pid).PeakWorkingSet64 >> 10; // VmHWM, on Linux
    static Task WaitAsync(Func<Task<bool>> condition, string failure, int everyMs = 20) =>
        ClusterCalls.WaitUntilAsync(condition, TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(everyMs), failure);

    // Polled every millisecond: the client's figure is the time until it could know.
    async Task TrivialJobAsync(long photo)
    {
        var conversion = await http.PostConversionAsync(photo, "flip");
        async Task<bool> Done() => (await http.GetFromJsonAsync<JsonElement>(conversion)).GetProperty("status")
            .GetString() is "done";
        await WaitAsync(Done, $"{conversion} was not done", everyMs: 1);
    }

    // Requests one at a time, each timed by the client; the first 5 only open connections and warm caches.
    static async Task<double[]> TimeAsync(int count, Func<int, Task> request)
    {
        var ms = new double[5 + count];
        for (var i = 0; i < ms.Length; i++)
        {
            var began = Stopwatch.GetTimestamp();
            await request(i);
            ms[i] = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
        }
        return ms[5..];
    }

    // A child, so that the memory and CPU it reports are its own; sharp as a user runs it, with a thread per worker.
    async Task<Result> ChildAsync(string child, string photos, int rounds, string operations)
    {
        var output = Directory.CreateDirectory(Path.Combine(scratch, child)).FullName;
        string[] program = child is "engine" ? ["dotnet", typeof(Bench).Assembly.Location, child]
            : ["env", "-u", "GLIBC_TUNABLES", $"UV_THREADPOOL_SIZE={cores}", "node", Path.Combine("bench", "peer.js")];
        string[] arguments = [.. program[1..], photos, $"{rounds}", $"{cores}", output, operations];
        var start = new ProcessStartInfo(program[0], arguments) { RedirectStandardOutput = true };
        using var process = Process.Start(start)!;
        var line = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return JsonSerializer.Deserialize<Result>(line)!; // a child that failed printed why, and no JSON
    }

    // A section of the report, written between its markers (bench.sh gives --short a copy of BENCHMARKS.md).
    void WriteSection(string section, params string[] tables)
    {
        var engine = $"{MagickNET.ImageMagickVersion.Split(' ')[1]} Q8 ({MagickNET.Version})";
        var measured = $"Measured {Env.Get("ON", "")}, .NET {Environment.Version}, the engine {engine}.";
        var text = string.Join("\n\n", [measured, .. tables]);
        Console.WriteLine(text);
        var between = $"(?<=<!-- {section}:begin .*?-->\n).*(?=\n<!-- {section}:end -->)";
        File.WriteAllText(report, Regex.Replace(File.ReadAllText(report), between, _ => text, RegexOptions.Singleline));
    }

    static string Table(string[] header, params IEnumerable<string[]> rows)
    {
        string[] rule = [.. header.Select((_, i) => i == 0 ? "---" : "---:")];
        string[][] lines = [header, rule, .. rows];
        return string.Join('\n', lines.Select(cells => $"| {string.Join(" | ", cells)} |"));
    }

    static double Percentile(double[] values, double p) =>
        values.Order().ElementAt((int)Math.Ceiling(p * values.Length) - 1);
    static string Ms(double value) => $"{value:F1} ms";
}

// What a child prints: the seconds and CPU seconds of its timed loop, each image's milliseconds, its peak memory.
sealed record Result(double Seconds, double[] Ms, long PeakKb, double CpuSeconds)
{
    public double Rate => Ms.Length / Seconds;
    public double CpuMs => 1000 * CpuSeconds / Ms.Length;
}

// A round, or rounds added together: the CPU seconds by part (Bench.Parts, and the machine's); the conversion before.
sealed record Round(int Jobs, double Seconds, Dictionary<string, double> Cpu, long After)
{
    public double Rate => Jobs / Seconds;
    public double PerJobMs(string part) => 1000 * Cpu.GetValueOrDefault(part) / Jobs;
    public static Round Sum(Round[] rounds) => new(rounds.Sum(round => round.Jobs), rounds.Sum(round => round.Seconds),
        rounds[0].Cpu.Keys.ToDictionary(key => key, key => rounds.Sum(round => round.Cpu[key])), rounds[0].After);
}
