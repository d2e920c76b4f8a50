namespace ImageProcessor.Benchmark;

/// <summary>One run of the benchmark: its settings, read from the command line, and the cluster it starts. The modes are
/// in their own files (Engine: the engine, the cli and sharp; Cluster; Camera), the report in Report, the shared helpers
/// in Measure.</summary>
sealed partial class Bench : IAsyncDisposable
{
    public const string OperationsFile = """
        resize: resize 640x360
        thumb: thumbnail 320x180 | format webp
        gray: autoorient | grayscale | resize 50%
        """;

    const string CameraOperations = "resize 640x360";

    readonly string photos, scratch, report, root, address = "http://127.0.0.1:48080", cameraPhotos;
    readonly bool quick, cameraOnly, scaleOnly;
    readonly int cores = Environment.ProcessorCount, rounds, trivialJobs, uploadSeconds, jobsPerRound, cameraRounds;
    readonly string[] inputs;
    readonly List<Process> started = [];
    readonly HttpClient http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));
    readonly List<string> cpu = []; // where the cores went during the cluster run with P = cores
    Result cameraEngine = null!, cameraPeer = null!;
    string nas = "";
    long tiny; // the photo of the trivial jobs

    public Bench(string[] args)
    {
        (photos, scratch, report, quick) = (Path.GetFullPath(args[0]), Path.GetFullPath(args[1]), args[2], args.Contains("--short"));
        (cameraOnly, scaleOnly) = (args.Contains("camera"), args.Contains("scale"));
        root = Directory.GetCurrentDirectory();
        rounds = quick ? 1 : 3;
        (trivialJobs, uploadSeconds) = quick ? (20, 1) : (300, 10);
        inputs = Directory.GetFiles(photos).Order().ToArray();
        jobsPerRound = inputs.Length * Operations.Parse(OperationsFile).Count;
        cameraPhotos = Path.Combine(photos, "camera");
        cameraRounds = quick ? 1 : 3;
        http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", "bench");
    }

    /// <summary>Every mode in turn, or the camera or the scale mode alone, each writing its section of the report.</summary>
    public async Task RunAllAsync()
    {
        Log($"{inputs.Length} photos x {jobsPerRound / inputs.Length} operations x {rounds} rounds, {cores} workers");

        var rows = cameraOnly || scaleOnly ? [] : new List<(string Mode, string Workers, Result Result)>
        {
            ("engine", $"{cores} threads", await ChildAsync("dotnet", [typeof(Result).Assembly.Location, "engine", photos, $"{rounds}", $"{cores}", Fresh("engine")])),
            ("cli", $"{cores} at a time", await CliAsync()),
            ("peer (sharp)", $"{cores} workers", await ChildAsync("node", [Path.Combine(root, "bench", "peer.js"), photos, $"{rounds}", $"{cores}", Fresh("peer")])),
        };
        // The camera mode's engine and sharp, each alone on the machine as the modes above: the same photos, the same resize.
        if (!scaleOnly)
        {
            cameraEngine = await ChildAsync("dotnet", [typeof(Result).Assembly.Location, "engine", cameraPhotos, $"{cameraRounds}", $"{cores}", Fresh("camera-engine"), CameraOperations]);
            cameraPeer = await ChildAsync("node", [Path.Combine(root, "bench", "peer.js"), cameraPhotos, $"{cameraRounds}", $"{cores}", Fresh("camera-peer"), "resize"]);
        }

        // The cluster: the API and the converter for the whole run, processors started afresh for each P.
        nas = Fresh("nas");
        Directory.CreateDirectory(Path.Combine(nas, "photos"));
        Directory.CreateDirectory(Path.Combine(nas, "outputs"));
        started.AddRange([Start("Api"), Start("Converter")]);
        try
        {
            await WaitUntilAsync(async () => (await http.GetAsync("/healthz")).IsSuccessStatusCode);
            if (!cameraOnly && !scaleOnly)
            {
                tiny = await UploadAsync(await File.ReadAllBytesAsync(Path.Combine(scratch, "tiny.png")), "tiny.png");
                foreach (var processors in new[] { 1, cores })
                    rows.Add(($"cluster P={processors}", $"{processors} processors", await ClusterAsync(processors)));
                var trivial = await TrivialJobsAsync();
                var uploads = await UploadsAsync();
                var apiPeakKb = PeakKb(started[0].Id);
                Write(rows, trivial, uploads, apiPeakKb);
            }
            if (!scaleOnly)
                await CameraAsync();
            if (!cameraOnly)
                await ScaleAsync();
        }
        finally
        {
            foreach (var process in started.Where(p => !p.HasExited))
                process.Kill(entireProcessTree: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        http.Dispose();
        await db.DisposeAsync();
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

    string Fresh(string name) => Directory.CreateDirectory(Path.Combine(scratch, name)).FullName;
}
