using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Dapper;
using Npgsql;
using RabbitMQ.Client;

namespace ImageProcessor.Tests;

/// <summary>What the tests do over HTTP, as a camera would, and how they check what comes back.</summary>
public static class Helpers
{
    // Common hands ImageMagick its policy before anything of Magick.NET has run, as Magick.NET ignores it after that; in
    // this process too, whichever test comes first, so Common's module initializer runs as the suite is loaded.
    [ModuleInitializer]
    internal static void LoadCommonFirst() => RuntimeHelpers.RunModuleConstructor(typeof(Magick).Module.ModuleHandle);

    public static string Sample(string subject) =>
        Directory.GetFiles(Path.Combine(Cluster.Root, "testing", "data", subject)).Single(f => !f.EndsWith("operations"));

    public static Task<HttpResponseMessage> UploadAsync(this HttpClient http, string path, string? source = null) =>
        http.UploadAsync(File.ReadAllBytes(path), Path.GetFileName(path), source);

    /// <summary>Uploads a photo of the format given, made from a real one (a 2560x1600 JPEG) and cut short, keeping that
    /// fraction of its bytes: its header whole, so that the upload is accepted, and its pixels not.</summary>
    public static async Task<long> CutPhotoIdAsync(this HttpClient http, Cluster cluster, string format, double kept)
    {
        var whole = Path.Combine(cluster.Scratch, $"whole-{Guid.NewGuid():N}.{format}");
        Run("convert", Sample("ladybird"), "-quality", "90", whole);
        var bytes = File.ReadAllBytes(whole);
        return await http.UploadedIdAsync(bytes[..(int)(bytes.Length * kept)], $"cut.{format}");
    }

    /// <summary>Posts the operations and polls the conversion until every job has finished.</summary>
    public static async Task<JsonElement> ConvertAsync(this HttpClient http, long photo, string operations) =>
        await http.WaitForAsync(await http.PostConversionAsync(photo, operations));

    public static async Task<JsonElement> WaitForAsync(this HttpClient http, string conversion, TimeSpan? within = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var body = await http.GetFromJsonAsync<JsonElement>(conversion);
            if (body.GetProperty("status").GetString() is "done" or "failed")
                return body;
            Assert.True(clock.Elapsed < (within ?? TimeSpan.FromSeconds(60)), $"{conversion} did not finish: {body}");
            await Task.Delay(50);
        }
    }

    /// <summary>Waits until the broker holds no message on the work queue or its dead-letter queue, counting those
    /// delivered and not yet acknowledged (rabbitmqctl's messages): a message in hand is one still to be handled.</summary>
    public static async Task WaitForQueuesToEmptyAsync()
    {
        for (var tries = 0; ; tries++)
        {
            var queues = Server("rabbitmq_ctl $TEST_RABBITMQ list_queues --no-table-headers name messages");
            var held = queues.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split('\t'))
                .Where(queue => queue[0] is "jobs" or "jobs.dead").Sum(queue => long.Parse(queue[1]));
            if (held == 0)
                return;
            Assert.True(tries < 400, $"the queues did not drain: {queues}");
            await Task.Delay(50);
        }
    }

    /// <summary>Applies an SQL file with psql to the suite's database, as the set-up applies db/schema.sql; in a
    /// schema of its own when one is given (its search_path).</summary>
    public static void Psql(string file, string? schema = null)
    {
        var settings = new NpgsqlConnectionStringBuilder(Env.Database(pool: 1));
        var database = $"postgresql://{settings.Username}:{settings.Password}@{settings.Host}:{settings.Port}/{settings.Username}"
            + (schema is null ? "" : $"?options=-csearch_path%3D{schema}");
        Run("psql", "-q", "-v", "ON_ERROR_STOP=1", database, "-f", file);
    }

    /// <summary>Checks that /stats shows each count as the tables hold it (TableCountsAsync's names).</summary>
    public static void AssertStatsAreTheTablesCounts(JsonElement stats, Dictionary<string, long> counts)
    {
        foreach (var (name, count) in counts)
            Assert.True(Count(stats, name) == count, $"/stats says {Count(stats, name)} for {name}, the tables {count}");
    }

    /// <summary>Runs a function of services.sh against the servers test.sh started (TEST_POSTGRES, TEST_RABBITMQ).</summary>
    public static string Server(string command) => Run("bash", "-c", $"cd {Cluster.Root} && source ./services.sh && {command}");

    /// <summary>Photos, and jobs and conversions by status, counted in the tables themselves: a conversion's status
    /// derived from its jobs as README defines it, not read from the counts Postgres keeps for /stats.</summary>
    public static async Task<Dictionary<string, long>> TableCountsAsync(NpgsqlDataSource db)
    {
        await using var connection = db.CreateConnection();
        var counts = new Dictionary<string, long> { ["photos"] = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM photos") };
        foreach (var status in new[] { "queued", "running", "done", "failed" })
            counts[$"jobs.{status}"] = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM jobs WHERE status = @status", new { status });
        foreach (var status in new[] { "pending", "running", "done", "failed" })
            counts[$"conversions.{status}"] = await connection.ExecuteScalarAsync<long>("""
                SELECT count(*) FROM (SELECT CASE WHEN c.error IS NOT NULL THEN 'failed' WHEN c.expanded IS NULL THEN 'pending'
                        WHEN bool_or(j.status IN ('queued', 'running')) THEN 'running' WHEN bool_or(j.status = 'failed') THEN 'failed'
                        ELSE 'done' END AS status
                    FROM conversions c LEFT JOIN jobs j ON j.conversion_id = c.id GROUP BY c.id) AS derived
                WHERE status = @status
                """, new { status });
        return counts;
    }

    /// <summary>Reads something (a page, a document) between two readings of the tables' counts that agree: nothing
    /// changed meanwhile, as other tests' clusters share the database. After five tries, the last reading.</summary>
    public static async Task<(T Read, Dictionary<string, long> Counts)> ReadSettledAsync<T>(
        NpgsqlDataSource db, Func<Task<T>> read)
    {
        for (var attempt = 0; ; attempt++)
        {
            var before = await TableCountsAsync(db);
            var result = await read();
            if (before.SequenceEqual(await TableCountsAsync(db)) || attempt == 5)
                return (result, before);
        }
    }

    /// <summary>A count of /stats by its name in TableCountsAsync: "photos", or a kind and a status, "jobs.done".</summary>
    public static long Count(JsonElement stats, string name) => name.Split('.') is [var kind, var status]
        ? stats.GetProperty(kind).TryGetProperty(status, out var count) ? count.GetInt64() : 0
        : stats.GetProperty(name).GetInt64();

    public static JsonElement Job(this JsonElement conversion, string name) =>
        conversion.GetProperty("jobs").EnumerateArray().Single(job => job.GetProperty("name").GetString() == name);

    /// <summary>Checks an error response: its status, the RFC 9457 media type, and the exact detail.</summary>
    public static async Task AssertProblemAsync(this HttpResponseMessage response, HttpStatusCode status, string detail)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.Equal(detail, problem.GetProperty("detail").GetString());
    }

    /// <summary>Reads an image back with ImageMagick's own identify, independently of the code under test.</summary>
    public static string Identify(byte[] image)
    {
        var path = Path.GetTempFileName();
        File.WriteAllBytes(path, image);
        try
        {
            return Run("identify", "-format", "%wx%h %m %[colorspace]", path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static string Run(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{program} failed: {errors.Result}");
        return output.Result;
    }
}
