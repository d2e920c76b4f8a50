using System.Diagnostics;
using System.Net.Sockets;

namespace ImageProcessor.Tests;

/// <summary>
/// README's ./run.sh, run as a new user runs it: from a fresh clone in a private (0700) directory, on ports of its own
/// so that it runs beside another ./run.sh or ./test.sh. It brings its own servers, so needs neither the suite's
/// cluster nor DATABASE and BUS.
/// </summary>
[Collection(nameof(RunScriptTests))]
public sealed class RunScriptTests : IDisposable
{
    const string ApiKey = "run-sh-key";
    static readonly TimeSpan StartTime = TimeSpan.FromMinutes(6), StopTime = TimeSpan.FromMinutes(2);
    readonly DirectoryInfo home = Directory.CreateTempSubdirectory("run-");
    readonly Dictionary<string, string> ports = Ports();
    readonly HttpClient http = new();

    public RunScriptTests()
    {
        Helpers.Run("chmod", "700", home.FullName); // as a home directory is: no way in for postgres or rabbitmq
        http.BaseAddress = new($"http://127.0.0.1:{ports["API_PORT"]}");
        http.DefaultRequestHeaders.Authorization = new("Bearer", ApiKey);
    }

    string Clone => Path.Combine(home.FullName, "ImageProcessor");
    string Log => Path.Combine(home.FullName, "run.log");

    [Fact]
    public async Task FromAPrivateCloneItServesPhotosStopsOnCtrlCAndKeepsItsDataForTheNextRun()
    {
        Helpers.Run("git", "clone", "--quiet", Cluster.Root, Clone);

        var (output, image) = await WhileRunningAsync(async () =>
        {
            var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));
            var conversion = await http.ConvertAsync(photo, "small: resize 32x32! | format png");
            Assert.Equal("done", conversion.GetProperty("status").GetString());
            var path = conversion.Job("small").GetProperty("output").GetString()!;
            return (path, await http.GetByteArrayAsync(path));
        });
        Assert.Equal("32x32 PNG sRGB", Helpers.Identify(image));

        // Its rows in db/data and its file on nas/ outlive the first run.
        Assert.Equal(image, await WhileRunningAsync(() => http.GetByteArrayAsync(output)));
        // Each service was published for this machine: ImageMagick's native library for linux-x64 alone, of the eight.
        foreach (var project in new[] { "Api", "Converter", "Processor" })
            Assert.Equal(["Magick.Native-Q8-x64.dll.so"], Directory.GetFiles(Path.Combine(Clone, project, "bin", "publish"), "Magick.Native*",
                SearchOption.AllDirectories).Select(Path.GetFileName));
    }

    public void Dispose()
    {
        http.Dispose();
        home.Delete(recursive: true);
    }

    // Starts ./run.sh in the clone, waits for /healthz, does the work, then presses Ctrl-C and checks that run.sh
    // ended and every port it opened is closed again.
    async Task<T> WhileRunningAsync<T>(Func<Task<T>> work)
    {
        // In a session of its own, so that whatever a failure leaves can be ended as a group. SIGINT is reset because a
        // process started in the background inherits it ignored, where a terminal's Ctrl-C reaches a foreground one.
        var start = new ProcessStartInfo("setsid", ["env", "--default-signal=INT", "bash", "-c", $"exec ./run.sh >>{Log} 2>&1"])
        {
            WorkingDirectory = Clone,
            Environment = { ["API_KEY"] = ApiKey, ["PROCESSORS"] = "1" },
        };
        foreach (var (name, port) in ports)
            start.Environment[name] = port;
        using var run = Process.Start(start)!;
        try
        {
            await WaitUntilHealthyAsync(run);
            var result = await work();

            Signal("INT", $"{run.Id}");
            using (var stopping = new CancellationTokenSource(StopTime))
                await run.WaitForExitAsync(stopping.Token);
            Assert.True(run.ExitCode == 130, $"run.sh ended with {run.ExitCode} on Ctrl-C\n{Logs()}");
            // RabbitMQ's Erlang distribution port is its port + 20000 (services.sh).
            var opened = ports.Values.Select(int.Parse).Append(int.Parse(ports["RABBITMQ_PORT"]) + 20_000);
            var open = opened.Where(IsOpen).ToList();
            Assert.True(open.Count == 0, $"still open after Ctrl-C: {string.Join(", ", open)}\n{Logs()}");
            return result;
        }
        finally
        {
            if (!run.HasExited)
            {
                // run.sh's own way out first, as it stops the servers it started in sessions of their own.
                Signal("TERM", $"{run.Id}");
                if (!run.WaitForExit(StopTime))
                    Signal("KILL", $"-{run.Id}");
            }
        }
    }

    async Task WaitUntilHealthyAsync(Process run)
    {
        var clock = Stopwatch.StartNew();
        while (!await IsHealthyAsync())
        {
            if (run.HasExited)
                Assert.Fail($"run.sh ended with {run.ExitCode} before /healthz answered\n{Logs()}");
            Assert.True(clock.Elapsed < StartTime, $"/healthz did not answer within {StartTime}\n{Logs()}");
            await Task.Delay(1000);
        }
    }

    async Task<bool> IsHealthyAsync()
    {
        try
        {
            return (await http.GetAsync("/healthz")).IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    // The end of run.sh's output and of each server's and service's log, for an assertion's message.
    string Logs()
    {
        var logs = Path.Combine(Clone, "logs");
        return string.Join('\n', new[] { Log, Path.Combine(Clone, "db", "data", "pgdata.log"), Path.Combine(Clone, "bus", "rabbitmq.log") }
            .Concat(Directory.Exists(logs) ? Directory.GetFiles(logs) : [])
            .Where(File.Exists)
            .Select(file => $"==> {file} <==\n{string.Join('\n', File.ReadLines(file).TakeLast(30))}"));
    }

    // Free ports for the run. RabbitMQ's Erlang distribution will listen on its port + 20000, so that one must be free
    // too, and within range.
    static Dictionary<string, string> Ports()
    {
        int api = Cluster.FreePort(), postgres = Cluster.FreePort(), management = Cluster.FreePort();
        var rabbitmq = Enumerable.Range(0, 1000).Select(_ => Random.Shared.Next(10_000, 30_000))
            .First(port => !IsOpen(port) && !IsOpen(port + 20_000) && !new[] { api, postgres, management }.Contains(port + 20_000));
        return new()
        {
            ["API_PORT"] = $"{api}", ["POSTGRES_PORT"] = $"{postgres}", ["RABBITMQ_PORT"] = $"{rabbitmq}", ["MANAGEMENT_PORT"] = $"{management}",
        };
    }

    static bool IsOpen(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    // Without Helpers.Run's check: the process may have ended meanwhile.
    static void Signal(string signal, string target) => Process.Start("kill", [$"-{signal}", target]).WaitForExit();
}

// Run alone, after the cluster's tests: its Release build and RabbitMQ's start would take cores from their timed checks.
[CollectionDefinition(nameof(RunScriptTests), DisableParallelization = true)]
public sealed class RunScriptCollection;
