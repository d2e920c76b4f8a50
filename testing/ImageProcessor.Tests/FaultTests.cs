using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Npgsql;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace ImageProcessor.Tests;

/// <summary>
/// Each fault is injected into the real running cluster in the middle of a batch of 60 jobs. Afterwards every job has
/// ended exactly once, done with one whole output or failed with a reason; no conversion is left pending or running;
/// the queues are empty; the API answers, and no service was restarted by hand other than the one the
/// fault ended.
/// </summary>
[Collection(nameof(Cluster))]
public sealed class FaultTests(Cluster cluster, ITestOutputHelper output)
{
    const int Conversions = 4, OutputsEach = 15;
    static readonly string Operations = string.Join('\n',
        Enumerable.Range(1, OutputsEach).Select(i => $"out{i}: resize {20 + i}% | blur {i % 3 + 1} | quality 80"));
    readonly HttpClient http = cluster.Http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database);

    [Fact]
    public async Task AProcessorKilledWhileItHoldsAJobLosesNothing()
    {
        var batch = await SubmitBatchAsync();
        var victim = cluster.Running("Processor")[0];
        await WaitUntilItHoldsAJobAsync(victim);
        cluster.Stop(victim, "KILL");

        await AssertEveryJobEndedOnceAsync(batch);
        await cluster.StartAsync("Processor");
    }

    [Fact]
    public async Task AProcessorToldToStopHandsBackItsJob()
    {
        var batch = await SubmitBatchAsync();
        var victim = cluster.Running("Processor")[0];
        await WaitUntilItHoldsAJobAsync(victim);
        cluster.Stop(victim, "TERM");

        Assert.Equal(143, victim.ExitCode); // ended by the signal: the broker hands the job in hand to another processor
        await AssertEveryJobEndedOnceAsync(batch);
        await cluster.StartAsync("Processor");
    }

    [Fact]
    public Task RestartingRabbitMQLosesNothingAndNewWorkIsRefusedWith503MeanwhileQuickly() => RestartMidBatchAsync(
        "rabbitmq_ctl $TEST_RABBITMQ stop_app", "rabbitmq_ctl $TEST_RABBITMQ start_app", "the message bus is unreachable; try again shortly");

    [Fact]
    public Task RestartingPostgresLosesNothingAndNewWorkIsRefusedWith503MeanwhileQuickly() => RestartMidBatchAsync(
        "postgres_ctl $TEST_POSTGRES stop", "postgres_ctl $TEST_POSTGRES start", detail: null);

    // A server stopped a second into a batch: new work is refused with 503 (and that detail) while it is down, every
    // service reconnects by itself once it is back, and neither that batch nor the next loses or repeats a job.
    async Task RestartMidBatchAsync(string stop, string start, string? detail)
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));
        var before = await SubmitBatchAsync(photo);
        await Task.Delay(1000);
        Server(stop);
        try
        {
            await AssertRefusedQuicklyAsync(() => http.PostOperationsAsync(photo, "flip"), detail);
            await AssertRefusedQuicklyAsync(() => http.UploadAsync(Helpers.Sample("flower")), detail);
        }
        finally
        {
            Server(start);
        }
        await cluster.WaitUntilHealthyAsync();
        // A broker may drop connections once more while it finishes starting: as a camera would, retry until accepted.
        for (var tries = 0; (await http.PostOperationsAsync(photo, "flip")).StatusCode != HttpStatusCode.Accepted; tries++)
        {
            Assert.True(tries < 60, "new work was still refused 30 s after the server came back");
            await Task.Delay(500);
        }
        var after = await SubmitBatchAsync(photo);

        await AssertEveryJobEndedOnceAsync([.. before, .. after]);
    }

    [Fact]
    public async Task AConverterOrApiKilledMidBatchLosesNothing()
    {
        var first = await SubmitBatchAsync();
        // Killed while it expands the conversions into jobs and publishes them: it acks a conversion only after both.
        cluster.Stop(cluster.Running("Converter").Single(), "KILL");
        await cluster.StartAsync("Converter");
        // And the API, killed as soon as it has accepted a batch.
        var second = await SubmitBatchAsync();
        cluster.Stop(cluster.Running("Api").Single(), "KILL");
        await cluster.StartAsync("Api");

        await AssertEveryJobEndedOnceAsync([.. first, .. second]);
    }

    [Fact]
    public async Task AJobThatKeepsFailingOrAMessageThatCannotBeReadIsDeadLetteredAndTheConsumersGoOn()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));
        var batch = await SubmitBatchAsync(photo);
        await using var connection = db.CreateConnection();
        // A job whose output path is taken by a folder, so that its processor throws at every delivery.
        var poisonJob = await connection.QuerySingleAsync<long>("""
            WITH conversion AS (INSERT INTO conversions (photo_id, operations) VALUES (@photo, 'poison: flip') RETURNING id)
            INSERT INTO jobs (conversion_id, name, steps) SELECT id, 'poison', '[{"Op": "flip", "Arg": ""}]' FROM conversion
            RETURNING id
            """, new { photo });
        Directory.CreateDirectory(Path.Combine(cluster.Nas, "outputs", $"{poisonJob}.jpeg"));
        var bus = await Bus.ConnectAsync();
        await bus.PublishAsync("jobs", new Message(poisonJob));
        await PublishRawAsync("jobs", "not a message");

        var job = (await http.WaitForAsync($"/conversions/{await ConversionOf(poisonJob)}")).Job("poison");
        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.StartsWith("gave up after 5 deliveries", job.GetProperty("error").GetString());
        await AssertEveryJobEndedOnceAsync(batch);
        Directory.Delete(Path.Combine(cluster.Nas, "outputs", $"{poisonJob}.jpeg"));
    }

    async Task<long[]> SubmitBatchAsync(long? photo = null)
    {
        photo ??= await http.UploadedIdAsync(Helpers.Sample("flower"));
        var conversions = new List<long>();
        for (var i = 0; i < Conversions; i++)
        {
            var response = await http.PostOperationsAsync(photo.Value, Operations);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            conversions.Add((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64());
        }
        return [.. conversions];
    }

    /// <summary>The invariant, with the figures it saw written to the test's output.</summary>
    async Task AssertEveryJobEndedOnceAsync(long[] conversions)
    {
        var jobs = new List<JsonElement>();
        foreach (var id in conversions)
            jobs.AddRange((await http.WaitForAsync($"/conversions/{id}", TimeSpan.FromSeconds(120))).GetProperty("jobs").EnumerateArray());
        var done = jobs.Where(job => job.GetProperty("status").GetString() == "done").Select(job => job.GetProperty("id").GetInt64()).ToList();
        var failed = jobs.Where(job => job.GetProperty("status").GetString() == "failed").ToList();
        // A processor killed mid-write leaves its temporary file behind; it is never an output and never served.
        var files = done.SelectMany(id => Directory.GetFiles(Path.Combine(cluster.Nas, "outputs"), $"{id}.*"))
            .Where(file => !file.EndsWith(".tmp")).ToList();
        var submitted = conversions.Length * OutputsEach;
        output.WriteLine($"jobs submitted {submitted}, completed {done.Count}, failed {failed.Count}, lost " +
            $"{submitted - done.Count - failed.Count}, duplicated {Math.Max(0, jobs.Count - submitted) + files.Count - done.Count}");

        Assert.Equal(submitted, jobs.Count);
        Assert.Equal(submitted, done.Count + failed.Count);
        Assert.All(failed, job => Assert.False(string.IsNullOrEmpty(job.GetProperty("error").GetString())));
        Assert.Equal(done.Select(id => $"{id}.jpeg").Order(), files.Select(Path.GetFileName).Order());
        Helpers.Run("identify", ["-regard-warnings", .. files]); // every output whole: a truncated one fails to read
        await Helpers.WaitForQueuesToEmptyAsync();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }

    // A processor holds a job while it has a file of the NAS open: the photo it reads or the output it writes.
    async Task WaitUntilItHoldsAJobAsync(Process processor)
    {
        for (var clock = Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(2))
            foreach (var fd in Directory.GetFiles($"/proc/{processor.Id}/fd"))
                if ((Try(() => new FileInfo(fd).LinkTarget) ?? "").StartsWith(cluster.Nas))
                    return;
        Assert.Fail("the processor never held a job");
    }

    // While a server is down, new work is refused at once with 503 ProblemDetails, never a hang or a 500.
    static async Task AssertRefusedQuicklyAsync(Func<Task<HttpResponseMessage>> request, string? detail = null)
    {
        var clock = Stopwatch.StartNew();
        var response = await request();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"refused only after {clock.Elapsed}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        if (detail is not null)
            Assert.Equal(detail, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
    }

    // Stops or starts a server that test.sh started, with its functions in services.sh.
    static void Server(string command) => Helpers.Run("bash", "-c", $"cd {Cluster.Root} && source ./services.sh && {command}");

    static async Task PublishRawAsync(string queue, string body)
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.BasicPublishAsync("", queue, Encoding.UTF8.GetBytes(body));
    }

    async Task<long> ConversionOf(long job) =>
        await db.CreateConnection().QuerySingleAsync<long>("SELECT conversion_id FROM jobs WHERE id = @job", new { job });

    static string? Try(Func<string?> read)
    {
        try
        {
            return read();
        }
        catch (IOException)
        {
            return null; // the file was closed meanwhile
        }
    }
}
