// ImageProcessor's benchmark, run by ../bench.sh as `dotnet Bench.dll PHOTOS SCRATCH REPORT [--short] [camera|scale]`.
// Each mode writes its section of BENCHMARKS.md: Main.cs (the seven photos), Camera.cs (the QA cameras' workload) and
// Scale.cs (the API with a factory's history); Bench.cs holds what they share. The engine runs as a child, below, as
// sharp does (peer.js), so that the peak memory and the CPU each reports are its own.
using ImageProcessor;
using ImageProcessor.Benchmark;

// Common hands ImageMagick its policy before anything of Magick.NET has run (Magick.NET ignores it after): first, then.
System.Runtime.CompilerServices.RuntimeHelpers.RunModuleConstructor(typeof(Magick).Module.ModuleHandle);

if (args is not ["engine", var photos, var rounds, var workers, var output, var operations])
{
    await new Bench(args).RunAsync();
    return;
}
// The engine: Magick.Convert as a processor calls it, on `workers` threads each taking the next image as it finishes
// one; each photo's format read from its header before the clock starts, as the API records it at upload.
var inputs = Directory.GetFiles(photos).Order().Select(path => (path, $"{new MagickImageInfo(path).Format}".ToLower()));
var (outputs, each) = (Operations.Parse(operations), Enumerable.Range(0, int.Parse(rounds)));
var tasks = (from round in each from input in inputs from wanted in outputs select (input, wanted)).ToArray();
var (ms, parallel) = (new ConcurrentBag<double>(), new ParallelOptions { MaxDegreeOfParallelism = int.Parse(workers) });
var (clock, cpu) = (Stopwatch.StartNew(), Process.GetCurrentProcess().TotalProcessorTime);
Parallel.ForEach(Partitioner.Create(tasks.Index(), EnumerablePartitionerOptions.NoBuffering), parallel, task =>
{
    var ((path, format), (_, steps)) = task.Item;
    var target = steps.LastOrDefault(step => step.Op == "format")?.Arg ?? format;
    var began = Stopwatch.GetTimestamp();
    if (Magick.Convert(path, format, steps, Path.Combine(output, $"{task.Index}.{target}"), target).Error is { } error)
        throw new InvalidOperationException($"{path}: {error}");
    ms.Add(Stopwatch.GetElapsedTime(began).TotalMilliseconds);
});
var seconds = clock.Elapsed.TotalSeconds;
var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
var result = new Result(seconds, [.. ms], Bench.PeakKb(Environment.ProcessId), cpuSeconds);
Console.WriteLine(JsonSerializer.Serialize(result));
