using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Dapper;
using Npgsql;

namespace ImageProcessor.Tests;

/// <summary>
/// The real cluster: the API, the converter and two processors as separate processes, against the Postgres and
/// RabbitMQ that the test command (test.sh) started and named in DATABASE and BUS. The NAS is a fresh folder.
/// </summary>
public sealed class Cluster : IAsyncLifetime
{
    public const long MaxUploadBytes = 2_000_000, MaxPixels = 20_000_000, JobSeconds = 10;
    public const string ApiKey = "test-key-3f9c";
    public static readonly string Root = FindRoot(AppContext.BaseDirectory);
    readonly List<Process> processes = [];

    public string Scratch { get; } = Directory.CreateTempSubdirectory("imageprocessor-cluster-").FullName;
    public string Nas => Path.Combine(Scratch, "nas");
    public Uri Address { get; } = new($"http://127.0.0.1:{FreePort()}");
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable("DATABASE") is null || Environment.GetEnvironmentVariable("BUS") is null)
            throw new InvalidOperationException("DATABASE and BUS are not set: run the suite with ./test.sh");
        // As curl does for large bodies, so that a refused upload is answered before its body is sent.
        Http = new HttpClient { BaseAddress = Address, DefaultRequestHeaders = { ExpectContinue = true } };
        Http.DefaultRequestHeaders.Authorization = new("Bearer", ApiKey);
        Directory.CreateDirectory(Path.Combine(Nas, "photos")); // the NAS's set-up, as run.sh and compose do it
        Directory.CreateDirectory(Path.Combine(Nas, "outputs"));
        Start("Api");
        Start("Converter");
        Start("Processor");
        Start("Processor");
        await WaitUntilHealthyAsync();
    }

    /// <summary>The bytes the NAS holds of an uploaded photo, found by its row.</summary>
    public async Task<byte[]> StoredPhotoAsync(long id)
    {
        await using var db = NpgsqlDataSource.Create(Env.Database(pool: 1));
        var path = await db.CreateConnection().ExecuteScalarAsync<string>("SELECT path FROM photos WHERE id = @id", new { id });
        return File.ReadAllBytes(Path.Combine(Nas, path!));
    }

    /// <summary>A second API, apart from the cluster, with the settings given over the suite's own: started, and given
    /// back with a client once it answers /healthz (with whatever status), and that answer.</summary>
    public static async Task<(Process Api, HttpClient Client, HttpResponseMessage Health)> StartApiAsync(
        params (string Name, string Value)[] settings)
    {
        var address = $"http://127.0.0.1:{FreePort()}";
        var start = new ProcessStartInfo("dotnet", [Built("Api")]) { RedirectStandardOutput = true, RedirectStandardError = true,
            Environment = { ["ASPNETCORE_URLS"] = address, ["API_KEY"] = ApiKey } };
        foreach (var (name, value) in settings)
            start.Environment[name] = value;
        var api = Process.Start(start)!;
        _ = (api.StandardOutput.ReadToEndAsync(), api.StandardError.ReadToEndAsync()); // read, so its logging never blocks
        var client = new HttpClient { BaseAddress = new(address), DefaultRequestHeaders = { Authorization = new("Bearer", ApiKey) } };
        for (var clock = Stopwatch.StartNew(); ; await Task.Delay(100))
        {
            try
            {
                return (api, client, await client.GetAsync("/healthz"));
            }
            catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(60) && !api.HasExited)
            {
                // not listening yet
            }
        }
    }

    /// <summary>The running processes of one service.</summary>
    public Process[] Running(string project) => [.. processes.Where(p => p.StartInfo.Environment["PROJECT"] == project && !p.HasExited)];

    /// <summary>Ends a process as the fault tests do, with kill -9 or SIGTERM, and waits for it to exit.</summary>
    public void Stop(Process process, string signal)
    {
        Helpers.Run("kill", $"-{signal}", $"{process.Id}");
        Assert.True(process.WaitForExit(30_000), $"{process.StartInfo.Environment["PROJECT"]} did not exit on SIG{signal}");
        processes.Remove(process);
    }

    public async Task StartAsync(string project, params (string Name, string Value)[] settings)
    {
        Start(project, settings);
        await WaitUntilHealthyAsync();
    }

    public Task WaitUntilHealthyAsync() => ClusterCalls.WaitUntilAsync(
        async () => (await Http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK,
        TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200), $"the cluster did not come up; logs in {Scratch}",
        hopeless: () => processes.Any(p => p.HasExited));

    public Task DisposeAsync()
    {
        foreach (var process in processes)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        Http.Dispose();
        return Task.CompletedTask;
    }

    void Start(string project, params (string Name, string Value)[] settings)
    {
        var log = Path.Combine(Scratch, $"{project.ToLowerInvariant()}-{processes.Count}.log");
        (string, string)[] cluster = [("API_KEY", ApiKey), ("NAS", Nas), ("ASPNETCORE_URLS", Address.ToString()),
            ("MAX_UPLOAD_BYTES", $"{MaxUploadBytes}"), ("MAX_PIXELS", $"{MaxPixels}"), ("JOB_SECONDS", $"{JobSeconds}"),
            // Room for a job in hand to finish after SIGTERM on a machine however busy; a test of the other branch
            // sets less.
            ("STOP_SECONDS", "60")];
        processes.Add(ClusterCalls.StartService(Built(project), log, [.. cluster, .. settings]));
    }

    /// <summary>A service's program, built by the test project's references in the same configuration as the tests.</summary>
    public static string Built(string project)
    {
        var configuration = Path.GetFileName(Path.GetDirectoryName(AppContext.BaseDirectory.TrimEnd('/')));
        return Path.Combine(Root, project, "bin", configuration!, "net10.0", $"{project}.dll");
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    static string FindRoot(string directory) =>
        File.Exists(Path.Combine(directory, "ImageProcessor.sln")) ? directory : FindRoot(Path.GetDirectoryName(directory.TrimEnd('/'))!);
}

[CollectionDefinition(nameof(Cluster))]
public sealed class ClusterCollection : ICollectionFixture<Cluster>;
