// ImageProcessor's benchmark: the same operations on the same photos, applied four ways in one run on one machine.
//   engine   Common's Magick.Convert in a tight in-process loop, one worker per core, under the services' policy.xml
//   cli      ImageMagick's `convert` command once per image and operation, as a shell script would run it
//   peer     sharp (libvips) in node (peer.js), one worker per core
//   cluster  the real system: uploads and operations files through the HTTP API, P = 1 and P = cores processors
// then the cost of one trivial job and the upload rate. The camera mode (alone: `camera`) is the QA cameras' workload:
// 192 photos of 2 MP, one `resize 640x360` each, through the engine, sharp and the cluster with P = cores processors,
// fresh and then warm, with the CPU each spends per image. The scale mode (alone: `scale`) fills the database to 100
// thousand, 1 million and 10 million jobs and times the API's reads and a conversion at each size. ../bench.sh starts
// Postgres and RabbitMQ, fetches the photos and sharp, and runs: dotnet Bench.dll PHOTOS SCRATCH REPORT [--short]
// [camera|scale]. Each mode but cluster runs in a process of its own, so that its peak memory is its own.
// The modes are in the files beside this one: Bench.cs (the run and its settings), Engine.cs, Cluster.cs, Camera.cs,
// Scale.cs, Report.cs (BENCHMARKS.md) and Measure.cs (the shared helpers).
using ImageProcessor;
using ImageProcessor.Benchmark;

// Common hands ImageMagick its policy before anything of Magick.NET has run (Magick.NET ignores it after): first, then.
System.Runtime.CompilerServices.RuntimeHelpers.RunModuleConstructor(typeof(Magick).Module.ModuleHandle);

// A child of the run: the engine alone in a process of its own, so that its peak memory is its own.
if (args is ["engine", var enginePhotos, var engineRounds, var engineWorkers, var engineOut, .. var engineOperations])
{
    var operations = engineOperations is [var given] ? given : Bench.OperationsFile;
    Console.WriteLine(JsonSerializer.Serialize(Bench.Engine(enginePhotos, int.Parse(engineRounds), int.Parse(engineWorkers), engineOut, operations)));
    return;
}

await using var bench = new Bench(args);
await bench.RunAllAsync();
