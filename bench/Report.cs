namespace ImageProcessor.Benchmark;

// The report: the sections of BENCHMARKS.md this run writes, and how it names the machine and the photos.
sealed partial class Bench
{
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
            $"| a processor's peak memory, over the cluster runs (the largest photo is {Describe(inputs.MaxBy(input => new ImageMagick.MagickImageInfo(input) is var i ? (long)i.Width * i.Height : 0)!)}) | " +
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

    static string Describe(string path)
    {
        var info = new ImageMagick.MagickImageInfo(path);
        return $"{Path.GetFileName(path)} {info.Width}x{info.Height} {info.Format.ToString().ToLowerInvariant()} {new FileInfo(path).Length / 1024} KiB";
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
}
