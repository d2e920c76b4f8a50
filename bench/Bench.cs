namespace ImageProcessor.Benchmark;

/// <summary>One run: its settings from the command line, the cluster it starts (the API and the converter once, the
/// processors afresh for each measurement), the one round that times it, the children it runs and the report.</summary>
sealed partial class Bench(string[] args)
{
    const string Address = "http://127.0.0.1:48080", Key = "bench", Client = "this benchmark's client";
    static readonly string[] Parts = ["Processor", "Api", "Converter", "Postgres", "RabbitMQ", Client];
    readonly string photos = Path.GetFullPath(args[0]), scratch = Path.GetFullPath(args[1]), report = args[2];
    readonly bool quick = args.Contains("--short");
    readonly int cores = Environment.ProcessorCount;
    readonly HttpClient http = new()
        { BaseAddress = new(Address), DefaultRequestHeaders = { Authorization = new("Bearer", Key) } };
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));
    readonly List<Process> services = [];

    string Nas => Path.Combine(scratch, "nas");

    /// <summary>Every mode in turn, or one alone, on one API and one converter (bench.sh ends them with this process's
    /// group).</summary>
    public async Task RunAsync()
    {
        Func<Task>[] all = [MainAsync, CameraAsync, ScaleAsync];
        var modes = args.Contains("camera") ? [CameraAsync] : args.Contains("scale") ? [ScaleAsync] : all;
        Directory.CreateDirectory(Path.Combine(Nas, "photos"));
        Directory.CreateDirectory(Path.Combine(Nas, "outputs"));
        services.AddRange([Start("Api"), Start("Converter")]);
        await WaitAsync(async () => (await http.GetAsync("/healthz")).IsSuccessStatusCode, "the API did not come up");
        foreach (var mode in modes)
            await mode();
    }

    // A service as bench.sh published it (SERVICES).
    Process Start(string project) => ClusterCalls.StartService(
        Path.Combine(Env.Get("SERVICES", ""), project, $"{project}.dll"),
        Path.Combine(scratch, $"{project}-{services.Count}.log"),
        ("NAS", Nas), ("API_KEY", Key), ("ASPNETCORE_URLS", Address));

    // The files uploaded by that many clients at once: the photos' ids, and how many were stored a second.
    async Task<(long[] Ids, double Rate)> UploadAsync(IEnumerable<string> files, int clients)
    {
        var (ids, clock) = (new ConcurrentBag<long>(), Stopwatch.StartNew());
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = clients },
            async (file, _) => ids.Add(await http.UploadedIdAsync(file)));
        return ([.. ids.Order()], ids.Count / clock.Elapsed.TotalSeconds);
    }

    // Processors started afresh (those before them ended: their jobs were the benchmark's own), ready once the broker
    // counts them as consumers of the jobs queue; then the rounds, and the processors' peak memory over them.
    async Task<(List<Round> Rounds, long PeakKb)> RoundsAsync(int processors, int rounds, long[] ids, string operations)
    {
        foreach (var old in services.Where(service => service.StartInfo.Environment["PROJECT"] == "Processor").ToList())
        {
            old.Kill();
            await old.WaitForExitAsync();
            services.Remove(old);
        }
        var started = Enumerable.Range(0, processors).Select(_ => Start("Processor")).ToArray();
        services.AddRange(started);
        await using var bus = await new ConnectionFactory { Uri = new(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await bus.CreateChannelAsync();
        await WaitAsync(async () => await channel.ConsumerCountAsync("jobs") == processors, "no processors");
        var measured = new List<Round>();
        for (var round = 0; round < rounds; round++)
            measured.Add(await RoundAsync(ids, operations));
        return (measured, started.Max(processor => PeakKb(processor.Id)));
    }

    // One round: the operations posted for every photo by cores × 4 keep-alive clients, then every job of the round
    // waited for until finished (done or failed). Timed by Postgres's clock from before the first post to the last
    // job's update, so that how often we poll (one kept connection, every 20 ms) does not bias the rate; the CPU of
    // each part read before the first post and once the poll sees the round finished.
    async Task<Round> RoundAsync(long[] photos, string operations)
    {
        var jobs = photos.Length * Operations.Parse(operations).Count;
        await using var poll = await db.OpenConnectionAsync();
        const string Start = "SELECT max(id), clock_timestamp() FROM conversions";
        var (after, began) = await poll.QuerySingleAsync<(long, DateTime)>(Start);
        var before = Cpu();
        await Parallel.ForEachAsync(photos, new ParallelOptions { MaxDegreeOfParallelism = cores * 4 },
            async (photo, _) => await http.PostConversionAsync(photo, operations));
        const string Finished = """
            SELECT count(*) FROM jobs WHERE conversion_id > @after AND status IN ('done', 'failed')
            """;
        await WaitAsync(async () => await poll.ExecuteScalarAsync<long>(Finished, new { after }) == jobs, "hung");
        var cpu = Cpu();
        const string End = "SELECT max(updated), min(error) FROM jobs WHERE conversion_id > @after";
        var (ended, error) = await poll.QuerySingleAsync<(DateTime, string?)>(End, new { after });
        if (error is not null)
            throw new InvalidOperationException($"a job failed: {error}");
        var used = cpu.ToDictionary(part => part.Key, part => part.Value - before[part.Key]);
        return new(jobs, (ended - began).TotalSeconds, used, after);
    }

    // The CPU seconds each part has used so far. A service started here: its process's utime and stime. Postgres and
    // RabbitMQ, which bench.sh started each in a process group of its own (SERVER_GROUPS): every live process of the
    // group and its descendants (Postgres's backends make groups of their own), each with the CPU of the children it
    // reaped (cutime, cstime: the backends that ended). This benchmark: its own process. The machine: /proc/stat's
    // first 8 counts but idle and iowait. All are ticks of 10 ms.
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
        cpu[Client] = Ticks($"{Environment.ProcessId}", 2);
        var machine = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..9];
        cpu["machine"] = machine.Select(long.Parse).Where((_, i) => i is not (3 or 4)).Sum();
        return cpu.ToDictionary(part => part.Key, part => part.Value / 100.0);
    }

    // The fields of /proc/PID/stat after the command's name (field n of proc(5) is [n - 2]), or null once it ended.
    static string[]? Stat(string pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }

    // Peak resident memory (VmHWM) of a running process, in KiB.
    public static long PeakKb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").Single(line => line.StartsWith("VmHWM:"))[6..^3]);

    static Task WaitAsync(Func<Task<bool>> condition, string failure, int everyMs = 20) =>
        ClusterCalls.WaitUntilAsync(condition, TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(everyMs), failure);

    // A trivial job (the 32x32 PNG flipped), from the operations POST until a GET, one a millisecond, says done.
    async Task TrivialJobAsync(long photo)
    {
        var conversion = await http.PostConversionAsync(photo, "flip");
        async Task<bool> Done() => (await http.GetFromJsonAsync<JsonElement>(conversion)).GetProperty("status")
            .GetString() is "done";
        await WaitAsync(Done, $"{conversion} was not done", everyMs: 1);
    }

    // Requests one at a time, each timed by the client, after 5 untimed ones (connections open, plans cached).
    static async Task<double[]> TimeAsync(int count, Func<int, Task> request)
    {
        for (var i = 0; i < 5; i++)
            await request(i);
        var ms = new double[count];
        for (var i = 0; i < count; i++)
        {
            var began = Stopwatch.GetTimestamp();
            await request(i);
            ms[i] = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
        }
        return ms;
    }

    // The engine (this program, `engine`) or sharp (peer.js, given sharp's names of the operations) in a child process
    // on `cores` threads, and the JSON line it prints.
    async Task<Result> ChildAsync(string child, string photos, int rounds, string operations)
    {
        var output = Directory.CreateDirectory(Path.Combine(scratch, child)).FullName;
        string[] program = child is "engine"
            ? ["dotnet", typeof(Bench).Assembly.Location, child] : ["node", Path.Combine("bench", "peer.js")];
        string[] arguments = [.. program[1..], photos, $"{rounds}", $"{cores}", output, operations];
        var start = new ProcessStartInfo(program[0], arguments) { RedirectStandardOutput = true };
        start.Environment["UV_THREADPOOL_SIZE"] = $"{cores}"; // sharp's worker threads
        if (child == "sharp")
            start.Environment.Remove("GLIBC_TUNABLES"); // bench.sh's, for our processes: sharp runs as a user runs it
        using var process = Process.Start(start)!;
        var line = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{child} failed");
        return JsonSerializer.Deserialize<Result>(line)!;
    }

    // Writes a section of the report between its markers (bench.sh gives --short a copy of BENCHMARKS.md to write).
    void WriteSection(string section, IEnumerable<string> lines)
    {
        var command = $"./bench.sh{string.Concat(args[3..].Select(arg => $" {arg}"))}";
        var engine = $"{MagickNET.ImageMagickVersion.Split(' ')[1]} Q8 ({MagickNET.Version})";
        var sharp = Env.Get("SHARP_VERSION", "");
        var versions = $"{RuntimeInformation.FrameworkDescription}, the engine {engine}, sharp {sharp}";
        var on = $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by `{command}` on {Env.Get("MACHINE", "")}";
        var measured = $"Measured {on}, {versions}.";
        var text = string.Join('\n', [measured, "", .. lines]);
        Console.WriteLine(text);
        var between = $"(?<=<!-- {section}:begin .*?-->\n).*(?=\n<!-- {section}:end -->)";
        File.WriteAllText(report, Regex.Replace(File.ReadAllText(report), between, _ => text, RegexOptions.Singleline));
    }

    static double Percentile(double[] values, double p) =>
        values.Order().ElementAt((int)Math.Ceiling(p * values.Length) - 1);

    static string Ms(double value) => $"{value:F1} ms";

    // A markdown table after a blank line: the header, then the rows; every column but the first is aligned right.
    static string[] Table(string[] header, params IEnumerable<string[]> rows) =>
        ["", Cells(header), Cells([.. header.Select((_, i) => i == 0 ? "---" : "---:")]), .. rows.Select(Cells)];

    static string Cells(string[] cells) => $"| {string.Join(" | ", cells)} |";
}

// What a child prints: its seconds over the timed loop, each image's milliseconds, its peak memory and CPU meanwhile.
sealed record Result(double Seconds, double[] Ms, long PeakKb, double CpuSeconds)
{
    public double Rate => Ms.Length / Seconds;
    public double CpuMs => 1000 * CpuSeconds / Ms.Length;
}

// A round's jobs, its seconds, the CPU seconds of each part (Bench.Parts) and of the machine, the conversion before it.
sealed record Round(int Jobs, double Seconds, Dictionary<string, double> Cpu, long After)
{
    public double Rate => Jobs / Seconds;
}
