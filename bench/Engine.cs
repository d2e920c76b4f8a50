namespace ImageProcessor.Benchmark;

// The engine and the cli, measured alone; sharp (peer.js) runs as a child like the engine (Bench.ChildAsync).
sealed partial class Bench
{
    // The engine: Magick.Convert, as a processor calls it, on `workers` threads taking the next image as they finish one.
    public static Result Engine(string photos, int rounds, int workers, string output, string operations)
    {
        var outputs = Operations.Parse(operations);
        var pinging = (Clock: Stopwatch.StartNew(), Cpu: Process.GetCurrentProcess().TotalProcessorTime);
        var inputs = Directory.GetFiles(photos).Order().Select(path => (Path: path, Format: new ImageMagick.MagickImageInfo(path).Format.ToString().ToLowerInvariant())).ToArray();
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
}
