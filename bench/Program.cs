// The benchmark (Bench.cs, run by ../bench.sh), and the engine it runs as a child, below, as it runs sharp (peer.js).
using ImageProcessor;
using ImageProcessor.Benchmark;

// Common hands ImageMagick its policy before anything of Magick.NET has run (Magick.NET ignores it after): first, then.
System.Runtime.CompilerServices.RuntimeHelpers.RunModuleConstructor(typeof(Magick).Module.ModuleHandle);

if (args is not ["engine", var photos, var rounds, var workers, var output, var operations])
    return await new Bench(args).RunAsync();
// The engine: Magick.Convert as a processor calls it, on `workers` threads each taking the next image as it finishes
// one; each photo's format read from its header before the clock starts, as the API records it at upload.
var inputs = Directory.GetFiles(photos).Order().Select(path => (path, $"{new MagickImageInfo(path).Format}".ToLower()));
var tasks = Enumerable.Repeat(inputs.ToArray(), int.Parse(rounds)).SelectMany(round => round)
    .SelectMany(input => Operations.Parse(operations).Select(output => (input, output))).Index().ToArray();
var ms = new ConcurrentBag<double>();
var parallel = new ParallelOptions { MaxDegreeOfParallelism = int.Parse(workers) };
var clock = Stopwatch.StartNew();
var cpu = Process.GetCurrentProcess().TotalProcessorTime;
Parallel.ForEach(Partitioner.Create(tasks, EnumerablePartitionerOptions.NoBuffering), parallel, task =>
{
    var ((path, format), (_, steps)) = task.Item;
    var target = steps.LastOrDefault(step => step.Op == "format")?.Arg ?? format;
    var began = Stopwatch.GetTimestamp();
    if (Magick.Convert(path, format, steps, Path.Combine(output, $"{task.Index}.{target}"), target).Error is { } error)
        throw new InvalidOperationException($"{path}: {error}");
    ms.Add(Stopwatch.GetElapsedTime(began).TotalMilliseconds);
});
var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
var result = new Result(clock.Elapsed.TotalSeconds, [.. ms], Bench.PeakKb(Environment.ProcessId), cpuSeconds);
Console.WriteLine(JsonSerializer.Serialize(result));
return 0;
