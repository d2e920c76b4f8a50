// ImageProcessor's benchmark: the same operations on the same photos, applied four ways in one run on one machine.
//   engine   Common's Magick.Convert in a tight in-process loop, one worker per core, under the services' policy.xml
//   cli      ImageMagick's `convert` command once per image and operation, as a shell script would run it
//   peer     sharp (libvips) in node (peer.js), one worker per core
//   cluster  the real system: uploads and operations files through the HTTP API, P = 1 and P = cores processors
// then the cost of one trivial job and the upload rate. The camera mode (alone: `camera`) is the QA cameras' workload:
// 192 photos of 2 MP, one `resize 640x360` each, through the engine, sharp and the cluster with P = cores processors,
// fresh and then warm, with the CPU each spends per image. ../bench.sh starts Postgres and RabbitMQ, fetches the photos
// and sharp, and runs: dotnet Bench.dll PHOTOS SCRATCH REPORT [--short] [camera]. Each mode but cluster runs in a
// process of its own, so that its peak memory is its own.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json;
using Dapper;
using ImageProcessor;
using Npgsql;
using RabbitMQ.Client;

const string OperationsFile = """
    resize: resize 640x360
    thumb: thumbnail 320x180 | format webp
    gray: autoorient | grayscale | resize 50%
    """;

const string CameraOperations = "resize 640x360";

// Common hands ImageMagick its policy before anything of Magick.NET has run (Magick.NET ignores it after): first, then.
System.Runtime.CompilerServices.RuntimeHelpers.RunModuleConstructor(typeof(Magick).Module.ModuleHandle);

if (args is ["engine", var enginePhotos, var engineRounds, var engineWorkers, var engineOut, .. var engineOperations])
{
    var operations = engineOperations is [var given] ? given : OperationsFile;
    Console.WriteLine(JsonSerializer.Serialize(Engine(enginePhotos, int.Parse(engineRounds), int.Parse(engineWorkers), engineOut, operations)));
    return;
}

var (photos, scratch, report, quick) = (Path.GetFullPath(args[0]), Path.GetFullPath(args[1]), args[2], args.Contains("--short"));
var cameraOnly = args.Contains("camera");
var root = Directory.GetCurrentDirectory();
var cores = Environment.ProcessorCount;
var rounds = quick ? 1 : 3;
var (trivialJobs, uploadSeconds) = quick ? (20, 1) : (300, 10);
var inputs = Directory.GetFiles(photos).Order().ToArray();
var jobsPerRound = inputs.Length * Operations.Parse(OperationsFile).Count;
Log($"{inputs.Length} photos x {jobsPerRound / inputs.Length} operations x {rounds} rounds, {cores} workers");

var rows = cameraOnly ? [] : new List<(string Mode, string Workers, Result Result)>
{
    ("engine", $"{cores} threads", await ChildAsync("dotnet", [typeof(Result).Assembly.Location, "engine", photos, $"{rounds}", $"{cores}", Fresh("engine")])),
    ("cli", $"{cores} at a time", await CliAsync()),
    ("peer (sharp)", $"{cores} workers", await ChildAsync("node", [Path.Combine(root, "bench", "peer.js"), photos, $"{rounds}", $"{cores}", Fresh("peer")])),
};
// The camera mode's engine and sharp, each alone on the machine as the modes above: the same photos, the same resize.
var cameraPhotos = Path.Combine(photos, "camera");
var cameraRounds = quick ? 1 : 3;
var cameraEngine = await ChildAsync("dotnet", [typeof(Result).Assembly.Location, "engine", cameraPhotos, $"{cameraRounds}", $"{cores}", Fresh("camera-engine"), CameraOperations]);
var cameraPeer = await ChildAsync("node", [Path.Combine(root, "bench", "peer.js"), cameraPhotos, $"{cameraRounds}", $"{cores}", Fresh("camera-peer"), "resize"]);

// The cluster: the API and the converter for the whole run, processors started afresh for each P.
var nas = Fresh("nas");
Directory.CreateDirectory(Path.Combine(nas, "photos"));
var address = "http://127.0.0.1:48080";
var started = new List<Process>();
started.AddRange([Start("Api"), Start("Converter")]);
using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) };
http.DefaultRequestHeaders.Authorization = new("Bearer", "bench");
await using var db = NpgsqlDataSource.Create(Env.Database);
var cpu = new List<string>(); // where the cores went during the cluster run with P = cores
long tiny = 0; // the photo of the trivial jobs
try
{
    await WaitUntilAsync(async () => (await http.GetAsync("/healthz")).IsSuccessStatusCode);
    if (!cameraOnly)
    {
        tiny = await UploadAsync(await File.ReadAllBytesAsync(Path.Combine(scratch, "tiny.png")), "tiny.png");
        foreach (var processors in new[] { 1, cores })
            rows.Add(($"cluster P={processors}", $"{processors} processors", await ClusterAsync(processors)));
        var trivial = await TrivialJobsAsync();
        var uploads = await UploadsAsync();
        var apiPeakKb = PeakKb(started[0].Id);
        Write(rows, trivial, uploads, apiPeakKb);
    }
    await CameraAsync();
}
finally
{
    foreach (var process in started.Where(p => !p.HasExited))
        process.Kill(entireProcessTree: true);
}

// The engine: Magick.Convert, as a processor calls it, on `workers` threads taking the next image as they finish one.
static Result Engine(string photos, int rounds, int workers, string output, string operations)
{
    var outputs = Operations.Parse(operations);
    var pinging = (Clock: Stopwatch.StartNew(), Cpu: Process.GetCurrentProcess().TotalProcessorTime);
    var inputs = Directory.GetFiles(photos).Order().Select(path => (Path: path, Magick.Ping(path).Format)).ToArray();
    Log($"engine: a header ping (one thread, its first included) took {pinging.Clock.Elapsed.TotalMilliseconds / inputs.Length:F2} ms, " +
        $"{(Process.GetCurrentProcess().TotalProcessorTime - pinging.Cpu).TotalMilliseconds / inputs.Length:F2} ms of CPU");
    var tasks = (from round in Enumerable.Range(0, rounds) from input in inputs from step in outputs select (input, step)).ToArray();
    var ms = new ConcurrentBag<double>();
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    Parallel.ForEach(Partitioner.Create(tasks.Index(), EnumerablePartitionerOptions.NoBuffering),
        new ParallelOptions { MaxDegreeOfParallelism = workers }, task =>
        {
            var ((path, format), (name, steps)) = task.Item;
            var target = steps.LastOrDefault(step => step.Op == "format")?.Arg ?? format;
            var began = Stopwatch.GetTimestamp();
            if (Magick.Convert(path, format, steps, Path.Combine(output, $"{task.Index}.{target}"), target).Error is { } error)
                throw new InvalidOperationException($"{path}: {error}");
            ms.Add(Stopwatch.GetElapsedTime(began).TotalMilliseconds);
        });
    var seconds = clock.Elapsed.TotalSeconds;
    return new Result(seconds, [.. ms], PeakKb(Environment.ProcessId), (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
}

// The cli: one `convert` per image and operation, `cores` at a time, each under GNU time for its peak memory.
async Task<Result> CliAsync()
{
    var options = new Dictionary<string, string[]>
    {
        ["resize"] = ["-resize", "640x360"],
        ["thumb"] = ["-thumbnail", "320x180"],
        ["gray"] = ["-auto-orient", "-colorspace", "gray", "-resize", "50%"],
    };
    var output = Fresh("cli");
    var tasks = (from round in Enumerable.Range(0, rounds) from input in inputs from option in options select (input, option)).ToArray();
    var (ms, peaks) = (new ConcurrentBag<double>(), new ConcurrentBag<long>());
    var clock = Stopwatch.StartNew();
    await Parallel.ForEachAsync(tasks.Index(), new ParallelOptions { MaxDegreeOfParallelism = cores }, async (task, _) =>
    {
        var (input, (name, arguments)) = task.Item;
        var extension = name == "thumb" ? "webp" : Path.GetExtension(input)[1..];
        var began = Stopwatch.GetTimestamp();
        var stderr = await RunAsync("/usr/bin/time", ["-f", "%M", "convert", input, .. arguments, Path.Combine(output, $"{task.Index}.{extension}")]);
        ms.Add(Stopwatch.GetElapsedTime(began).TotalMilliseconds);
        peaks.Add(long.Parse(stderr.Trim().Split('\n')[^1]));
    });
    return new Result(clock.Elapsed.TotalSeconds, [.. ms], peaks.Max());
}

// The cluster with P processors: every photo uploaded and its operations file posted, `rounds` times over, timed from
// the first upload until the last job is done. Per image: the processor's own duration of each job.
async Task<Result> ClusterAsync(int processors)
{
    var workers = await StartProcessorsAsync(processors);
    var first = await db.CreateConnection().ExecuteScalarAsync<long>("SELECT coalesce(max(id), 0) FROM conversions");
    var (before, machineBefore) = (started.ToDictionary(p => p.Id, p => CpuTicks(p.Id)), MachineTicks());
    var clock = Stopwatch.StartNew();
    // As a fleet of cameras does: `cores` clients at once, each uploading a photo and posting its operations file.
    await Parallel.ForEachAsync(Enumerable.Range(0, rounds).SelectMany(_ => inputs), new ParallelOptions { MaxDegreeOfParallelism = cores },
        async (input, _) => await PostAsync($"/photos/{await UploadAsync(await File.ReadAllBytesAsync(input), Path.GetFileName(input))}/operations", OperationsFile));
    const string Finished = "SELECT count(*) FROM jobs WHERE conversion_id > @first AND status IN ('done', 'failed')";
    await WaitUntilAsync(async () => await db.CreateConnection().ExecuteScalarAsync<long>(Finished, new { first }) == rounds * jobsPerRound);
    var seconds = clock.Elapsed.TotalSeconds;
    if (processors == cores)
    {
        var used = started.Where(p => before.ContainsKey(p.Id)).GroupBy(p => p.StartInfo.Environment["PROJECT"])
            .Select(g => (Name: g.Key, Seconds: g.Sum(p => CpuTicks(p.Id) - before[p.Id]) / 100.0)).ToList();
        var machine = (MachineTicks() - machineBefore) / 100.0;
        cpu.AddRange(used.Select(u => $"| {u.Name} | {u.Seconds:F1} s |"));
        cpu.Add($"| everything else: Postgres, RabbitMQ, this benchmark's client, the kernel | {machine - used.Sum(u => u.Seconds):F1} s |");
        cpu.Add($"| idle | {cores * seconds - machine:F1} s |");
    }
    var jobs = (await db.CreateConnection().QueryAsync<(string Status, string? Error, int Ms)>(
        "SELECT status, error, duration_ms FROM jobs WHERE conversion_id > @first", new { first })).ToList();
    if (jobs.Where(job => job.Status != "done").Select(job => job.Error).FirstOrDefault() is { } error)
        throw new InvalidOperationException($"a job failed: {error}");
    var peak = workers.Max(worker => PeakKb(worker.Id));
    foreach (var worker in processors == cores ? [] : workers) // the last ones stay for the trivial jobs
    {
        worker.Kill();
        worker.WaitForExit();
        started.Remove(worker);
    }
    return new Result(seconds, [.. jobs.Select(job => (double)job.Ms)], peak);
}

// Processors started afresh, each warmed up by trivial jobs (connections opened, code compiled) as a running one is.
async Task<List<Process>> StartProcessorsAsync(int processors)
{
    var workers = Enumerable.Range(0, processors).Select(_ => Start("Processor")).ToList();
    started.AddRange(workers);
    await WaitUntilAsync(async () => await ConsumersAsync("jobs") == processors);
    for (var i = 0; i < 50 * processors; i++)
        await TrivialJobAsync();
    return workers;
}

// One trivial job: the 32x32 PNG flipped. Timed by the client, from the operations POST until a GET (one every
// millisecond) says done, and by the database, from the conversion's insert to the job's result.
async Task<(double Client, double Server)> TrivialJobAsync()
{
    var began = Stopwatch.GetTimestamp();
    var conversion = await PostAsync($"/photos/{tiny}/operations", "flip");
    while ((await http.GetFromJsonAsync<JsonElement>(conversion)).GetProperty("status").GetString() is not "done")
        await Task.Delay(1);
    var client = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
    return (client, await db.CreateConnection().ExecuteScalarAsync<double>("""
        SELECT extract(epoch FROM max(jobs.updated) - min(conversions.created)) * 1000 FROM conversions JOIN jobs ON conversion_id = conversions.id
        WHERE conversions.id = @id
        """, new { id = long.Parse(conversion.Split('/')[^1]) }));
}

// Trivial jobs one after another, on the processors of the last cluster run.
async Task<(double[] Client, double[] Server)> TrivialJobsAsync()
{
    var ms = new List<(double Client, double Server)>();
    for (var i = 0; i < trivialJobs; i++)
        ms.Add(await TrivialJobAsync());
    return ([.. ms.Select(m => m.Client)], [.. ms.Select(m => m.Server)]);
}

// Uploads of a 200 KB JPEG from 16 clients at once for uploadSeconds: how many the API stores per second.
async Task<double> UploadsAsync()
{
    var bytes = await File.ReadAllBytesAsync(Path.Combine(root, "testing", "data", "aqua", "aqua.jpg"));
    var count = 0;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
    {
        while (clock.Elapsed.TotalSeconds < uploadSeconds)
        {
            await UploadAsync(bytes, "aqua.jpg");
            Interlocked.Increment(ref count);
        }
    }));
    return count / clock.Elapsed.TotalSeconds;
}

async Task<long> UploadAsync(byte[] bytes, string name)
{
    using var form = new MultipartFormDataContent { { new ByteArrayContent(bytes), "file", name } };
    var response = await http.PostAsync("/photos", form);
    if (response.StatusCode != HttpStatusCode.Created)
        throw new InvalidOperationException($"upload: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
}

async Task<string> PostAsync(string path, string operations)
{
    var response = await http.PostAsync(path, new StringContent(operations, MediaTypeHeaderValue.Parse("text/plain")));
    if (response.StatusCode != HttpStatusCode.Accepted)
        throw new InvalidOperationException($"operations: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    return response.Headers.Location!.ToString();
}

async Task<uint> ConsumersAsync(string queue)
{
    await using var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
    await using var channel = await connection.CreateChannelAsync();
    return await channel.ConsumerCountAsync(queue);
}

Process Start(string project)
{
    var log = Path.Combine(scratch, $"{project.ToLowerInvariant()}-{started.Count}.log");
    var start = new ProcessStartInfo("bash", ["-c", $"exec dotnet {Environment.GetEnvironmentVariable("SERVICES")}/{project}/{project}.dll >>{log} 2>&1"]);
    start.Environment["PROJECT"] = project;
    start.Environment["NAS"] = nas;
    start.Environment["API_KEY"] = "bench";
    start.Environment["ASPNETCORE_URLS"] = address;
    return Process.Start(start)!;
}

async Task<Result> ChildAsync(string program, string[] arguments)
{
    Log($"{program} {string.Join(' ', arguments)}");
    var start = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true };
    start.Environment["UV_THREADPOOL_SIZE"] = $"{cores}"; // sharp's worker threads
    if (program == "node")
        start.Environment.Remove("GLIBC_TUNABLES"); // bench.sh's, for our processes: sharp runs as a user would run it
    using var child = Process.Start(start)!;
    var output = await child.StandardOutput.ReadToEndAsync();
    await child.WaitForExitAsync();
    return child.ExitCode == 0 ? JsonSerializer.Deserialize<Result>(output)! : throw new InvalidOperationException($"{program} failed");
}

static async Task<string> RunAsync(string program, string[] arguments)
{
    using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardError = true, RedirectStandardOutput = true })!;
    var stderr = await process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    return process.ExitCode == 0 ? stderr : throw new InvalidOperationException($"{program} {string.Join(' ', arguments)}: {stderr}");
}

static async Task WaitUntilAsync(Func<Task<bool>> condition)
{
    var deadline = DateTime.UtcNow.AddMinutes(10);
    while (!await Try(condition))
    {
        if (DateTime.UtcNow > deadline)
            throw new TimeoutException("the cluster did not get there in 10 minutes");
        await Task.Delay(10);
    }

    static async Task<bool> Try(Func<Task<bool>> condition)
    {
        try
        {
            return await condition();
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }
}

// CPU time a process (user and system) or the whole machine (all but idle) has used, in clock ticks of 10 ms.
static long CpuTicks(int pid) => File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ') is var f ? long.Parse(f[12]) + long.Parse(f[13]) : 0;

static long? TryCpuTicks(int pid)
{
    try
    {
        return CpuTicks(pid);
    }
    catch (IOException)
    {
        return null; // ended
    }
}

// The processes of a server that bench.sh started: those whose command line names its folder, and their descendants.
static List<int> ServerPids(string folder)
{
    var processes = new List<(int Pid, int Parent, string Command)>();
    foreach (var pid in Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(name => name!.All(char.IsAsciiDigit)).Select(int.Parse!))
        try
        {
            var parent = int.Parse(File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].Split(' ')[2]);
            processes.Add((pid, parent, File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ')));
        }
        catch (IOException)
        {
        }
    var found = processes.Where(p => p.Command.Contains(folder)).Select(p => p.Pid).ToHashSet();
    while (processes.Where(p => found.Contains(p.Parent) && !found.Contains(p.Pid)).Select(p => p.Pid).ToList() is { Count: > 0 } children)
        found.UnionWith(children);
    return [.. found];
}

// Context switches of all the threads of a process, voluntary and not.
static long Switches(int pid) => Directory.GetDirectories($"/proc/{pid}/task").Sum(task =>
{
    try
    {
        return File.ReadLines($"{task}/status").Where(line => line.Contains("ctxt_switches:")).Sum(line => long.Parse(line.Split(':')[1]));
    }
    catch (IOException)
    {
        return 0;
    }
});

static long MachineTicks() => File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..]
    .Select(long.Parse).Where((_, i) => i != 3 && i != 4).Sum(); // all but idle and iowait

// Peak resident memory (VmHWM) of a running process, in KiB.
static long PeakKb(int pid) =>
    long.Parse(File.ReadLines($"/proc/{pid}/status").Single(line => line.StartsWith("VmHWM:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

string Fresh(string name) => Directory.CreateDirectory(Path.Combine(scratch, name)).FullName;

static void Log(string message) => Console.Error.WriteLine($"bench: {message}");

static double Percentile(double[] values, double p) => values.Order().ElementAt((int)Math.Ceiling(p * values.Length) - 1);

void Write(List<(string Mode, string Workers, Result Result)> rows, (double[] Client, double[] Server) trivial, double uploads, long apiPeakKb)
{
    double Rate(string mode) => rows.Single(row => row.Mode == mode).Result.Rate;
    var (engine, cluster) = (Rate("engine"), Rate($"cluster P={cores}"));
    string[] lines =
    [
        $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by `./bench.sh{(quick ? " --short" : "")}` on {Machine()}.",
        "",
        $"Input: {inputs.Length} photos ({string.Join(", ", inputs.Select(Describe))}), each given the operations",
        $"`resize 640x360`, `thumbnail 320x180 | format webp` and `autoorient | grayscale | resize 50%`, {rounds} rounds: {rounds * jobsPerRound} images per mode.",
        "",
        "| mode | workers | images/s | ms per image, median | ms per image, p99 | peak memory per process |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        .. rows.Select(row => $"| {row.Mode} | {row.Workers} | {row.Result.Rate:F2} | {Percentile(row.Result.Ms, 0.5):F0} | " +
            $"{Percentile(row.Result.Ms, 0.99):F0} | {row.Result.PeakKb / 1024} MiB |"),
        "",
        "| ratio | measured | target |",
        "| --- | ---: | ---: |",
        $"| cluster P={cores} / engine | {cluster / engine:F2} | ≥ 0.9 |",
        $"| engine / peer | {engine / Rate("peer (sharp)"):F2} | ≥ 1 |",
        $"| engine / cli | {engine / Rate("cli"):F2} | |",
        $"| cluster P={cores} / P=1 | {cluster / Rate("cluster P=1"):F2} | ≥ 1.8 |",
        "",
        "| other figure | measured | target |",
        "| --- | ---: | ---: |",
        $"| one trivial job (32x32 PNG, `flip`), {trivial.Client.Length} in a row, operations POST to a GET that says `done`: median | {Percentile(trivial.Client, 0.5):F1} ms | < 10 ms |",
        $"| the same, p99 | {Percentile(trivial.Client, 0.99):F1} ms | < 50 ms |",
        $"| the same in the database, the conversion's insert to the job's result: median | {Percentile(trivial.Server, 0.5):F1} ms | |",
        $"| the same in the database, p99 | {Percentile(trivial.Server, 0.99):F1} ms | |",
        $"| uploads of a 200 KB JPEG, 16 clients, {uploadSeconds} s | {uploads:F0} /s | ≥ 300 /s |",
        $"| a processor's peak memory, over the cluster runs (the largest photo is {Describe(inputs.MaxBy(input => Magick.Ping(input) is var (w, h, _, _, _, _) ? (long)w * h : 0)!)}) | " +
            $"{rows.Where(row => row.Mode.StartsWith("cluster")).Max(row => row.Result.PeakKb) / 1024} MiB | < 300 MiB |",
        $"| the API's peak memory, after all of the above | {apiPeakKb / 1024} MiB | |",
        "",
        $"Where the {cores} cores went during the cluster run with P={cores} (CPU time from /proc):",
        "",
        "| process | CPU time |",
        "| --- | ---: |",
        .. cpu,
    ];
    WriteSection("bench", lines);
}

// Puts the lines between the markers of a section of the report (bench, camera), which are added if missing.
void WriteSection(string section, string[] lines)
{
    var table = string.Join('\n', lines);
    Console.WriteLine(table);
    string Begin = $"<!-- {section}:begin (./bench.sh writes what follows) -->", End = $"<!-- {section}:end -->";
    var text = File.Exists(report) ? File.ReadAllText(report) : "# Benchmarks\n";
    if (!text.Contains(Begin))
        text += $"\n{Begin}\n{End}\n";
    var (from, to) = (text.IndexOf(Begin) + Begin.Length, text.IndexOf(End));
    File.WriteAllText(report, $"{text[..from]}\n{table}\n{text[to..]}");
}

// The camera mode: every photo uploaded by cores x 4 keep-alive clients; then P = cores processors started afresh and,
// round after round, one operations file `resize 640x360` posted per photo by as many clients, each round timed from
// its first post until its last job is done. The first round is the processors' first jobs (nothing compiled yet, no
// connection open yet: no warm-up), the others are warm. Every job must end done with a 640x360 JPEG, read back.
async Task CameraAsync()
{
    foreach (var old in started.Where(p => p.StartInfo.Environment["PROJECT"] == "Processor").ToList())
    {
        old.Kill();
        old.WaitForExit();
        started.Remove(old);
    }
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
    var sized = jobs.Count(job => job.Output is { } output && Magick.Ping(Path.Combine(nas, output)) is (640, 360, "jpeg", _, _, _));
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

void WriteCamera(string[] files, double uploadRate, List<CameraRound> rounds,
    (int Expected, int Jobs, int Done, int Sized, long Claimed, long Twice) check, long processorPeakKb)
{
    var (fresh, warm) = (rounds[0], rounds[1..]);
    var warmJobs = warm.Sum(round => round.Jobs);
    var warmRate = warmJobs / warm.Sum(round => round.Seconds);
    double Cpu(IEnumerable<CameraRound> some, string project) => some.Sum(round => round.Cpu.GetValueOrDefault(project));
    double PerJob(IEnumerable<CameraRound> some, string project) => 1000 * Cpu(some, project) / some.Sum(round => round.Jobs);
    double Others(IEnumerable<CameraRound> some) => 1000 * some.Sum(round => round.Machine - round.Cpu.Values.Sum()) / some.Sum(round => round.Jobs);
    double Idle(IEnumerable<CameraRound> some) => 1000 * some.Sum(round => cores * round.Seconds - round.Machine) / some.Sum(round => round.Jobs);
    var engineCpu = 1000 * cameraEngine.CpuSeconds / cameraEngine.Ms.Length;
    var bytes = files.Select(file => new FileInfo(file).Length / 1024).ToArray();
    string[] lines =
    [
        $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by `./bench.sh{(quick ? " --short" : "")}{(cameraOnly ? " camera" : "")}` on {Machine()}.",
        "",
        $"Input: {files.Length} JPEGs of 1920x1080 at quality 88 ({bytes.Min()}-{bytes.Max()} KiB, median {bytes.Order().ElementAt(bytes.Length / 2)} KiB), cut from",
        $"the 12 photos of mate-backgrounds' nature folder; one operations file, `{CameraOperations}`, per photo. The cluster: the photos",
        $"uploaded first ({uploadRate:F0} /s), then P = {cores} processors started and the operations posted by {cores * 4} keep-alive clients, {rounds.Count} rounds.",
        "",
        "| mode | images | images/s | CPU per image | ms per image, median |",
        "| --- | ---: | ---: | ---: | ---: |",
        $"| engine, `Magick.Convert` in process, {cores} threads | {cameraEngine.Ms.Length} | {cameraEngine.Rate:F1} | {engineCpu:F1} ms | {Percentile(cameraEngine.Ms, 0.5):F1} |",
        $"| sharp (libvips), {cores} workers | {cameraPeer.Ms.Length} | {cameraPeer.Rate:F1} | {1000 * cameraPeer.CpuSeconds / cameraPeer.Ms.Length:F1} ms | {Percentile(cameraPeer.Ms, 0.5):F1} |",
        $"| cluster P={cores}, the first {fresh.Jobs} jobs of fresh processors | {fresh.Jobs} | {fresh.Jobs / fresh.Seconds:F1} | {PerJob([fresh], "Processor"):F1} ms in processors | |",
        $"| cluster P={cores}, warm: rounds 2-{rounds.Count} ({string.Join(", ", warm.Select(round => $"{round.Jobs / round.Seconds:F1}"))} /s) | {warmJobs} | {warmRate:F1} | {PerJob(warm, "Processor"):F1} ms in processors | |",
        "",
        "| ratio | measured | target |",
        "| --- | ---: | ---: |",
        $"| cluster warm / engine | {warmRate / cameraEngine.Rate:F2} | ≥ 0.75 |",
        $"| cluster, first {fresh.Jobs} jobs / engine | {fresh.Jobs / fresh.Seconds / cameraEngine.Rate:F2} | ≥ 0.5 |",
        $"| processors' CPU per job, warm / engine's CPU per image | {PerJob(warm, "Processor") / engineCpu:F2} | ≤ 1.3 |",
        $"| the same, first {fresh.Jobs} jobs | {PerJob([fresh], "Processor") / engineCpu:F2} | |",
        $"| cluster warm / sharp | {warmRate / cameraPeer.Rate:F2} | |",
        $"| engine / sharp | {cameraEngine.Rate / cameraPeer.Rate:F2} | ≥ 1 |",
        "",
        "| check | result |",
        "| --- | ---: |",
        $"| jobs done, of the {check.Expected} posted | {check.Done} of {check.Jobs} made |",
        $"| outputs read back as 640x360 JPEGs | {check.Sized} |",
        $"| jobs processed more than once (claims counted by a trigger: {check.Claimed} jobs claimed) | {check.Twice} |",
        $"| a processor's peak memory | {processorPeakKb / 1024} MiB |",
        "",
        $"Where the {cores} cores went, per job (CPU time from /proc over each round, divided by its jobs):",
        "",
        $"| process | first {fresh.Jobs} jobs | warm |",
        "| --- | ---: | ---: |",
        .. new[] { "Processor", "Api", "Converter", "Postgres", "RabbitMQ", "this benchmark's client" }
            .Select(project => $"| {project} | {PerJob([fresh], project):F1} ms | {PerJob(warm, project):F1} ms |"),
        $"| everything else: the kernel, other processes | {Others([fresh]):F1} ms | {Others(warm):F1} ms |",
        $"| idle | {Idle([fresh]):F1} ms | {Idle(warm):F1} ms |",
        $"| posting the operations files took | {fresh.Posted:F2} s | {warm.Average(round => round.Posted):F2} s a round |",
    ];
    WriteSection("camera", lines);
}

static string Describe(string path)
{
    var (width, height, format, _, _, _) = Magick.Ping(path);
    return $"{Path.GetFileName(path)} {width}x{height} {format} {new FileInfo(path).Length / 1024} KiB";
}

static string Machine()
{
    var cpu = File.ReadLines("/proc/cpuinfo").First(line => line.StartsWith("model name")).Split(':')[1].Trim();
    var memory = long.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) >> 20;
    var os = File.ReadLines("/etc/os-release").First(line => line.StartsWith("PRETTY_NAME=")).Split('=')[1].Trim('"');
    return $"{cpu}, {Environment.ProcessorCount} cores, {memory} GiB, {os}, {RuntimeInformation.FrameworkDescription}, " +
        $"the engine {ImageMagick.MagickNET.ImageMagickVersion.Split(' ')[1]} Q8 ({ImageMagick.MagickNET.Version}), " +
        $"the cli's ImageMagick {Environment.GetEnvironmentVariable("IMAGEMAGICK_VERSION")}, sharp {Environment.GetEnvironmentVariable("SHARP_VERSION")}";
}

sealed record CameraRound(int Jobs, double Seconds, double Posted, Dictionary<string, double> Cpu, double Machine);

// CpuSeconds: what the process used over the timed part (engine and peer; the cluster's is measured from /proc).
sealed record Result(double Seconds, double[] Ms, long PeakKb, double CpuSeconds = 0)
{
    public double Rate => Ms.Length / Seconds;
}
