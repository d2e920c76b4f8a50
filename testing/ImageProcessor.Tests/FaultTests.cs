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
/// Each fault is injected into the real running cluster in the middle of a batch of 60 jobs, which each test observes
/// (jobs of the batch still queued or running as it strikes) rather than assumes. Afterwards every job has ended exactly
/// once, done with one whole output (they are all valid, so none may fail); no conversion is left pending or running;
/// the queues are empty; the API answers, and no service was restarted by hand other than the one the fault ended.
/// </summary>
[Collection(nameof(Cluster))]
public sealed class FaultTests(Cluster cluster, ITestOutputHelper output)
{
    const int Conversions = 4, OutputsEach = 15;
    static readonly string Operations = string.Join('\n',
        Enumerable.Range(1, OutputsEach).Select(i => $"out{i}: resize {20 + i}% | blur {i % 3 + 1} | quality 80"));
    readonly HttpClient http = cluster.Http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));

    [Fact]
    public async Task AProcessorKilledWhileItHoldsAJobLosesNothing()
    {
        var batch = await SubmitBatchAsync();
        // Two of the batch's jobs claimed and not finished: each of the two processors holds one.
        for (var clock = Stopwatch.StartNew(); await CountAsync(batch, "status = 'running'") < 2; await Task.Delay(5))
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "the processors never held a job each");
        cluster.Stop(cluster.Running("Processor")[0], "KILL");
        Assert.True(await UnfinishedAsync(batch) > 0, "the batch ended before the fault");

        await AssertEveryJobEndedOnceAsync(batch);
        await cluster.StartAsync("Processor");
    }

    [Fact]
    public async Task AProcessorToldToStopFinishesItsLongJobRecordsItAndExitsZero()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird"));
        // About 3.5 s of one core, however long it takes here: the cluster's processors have 60 s (STOP_SECONDS) to finish.
        var slow = await PostedIdAsync(photo, "slow: blur 30");
        var victim = await WaitForTheBusyProcessorAsync(slow);
        var batch = await SubmitBatchAsync();

        var clock = Stopwatch.StartNew();
        cluster.Stop(victim, "TERM");
        output.WriteLine($"SIGTERM to exit: {clock.ElapsedMilliseconds} ms");

        Assert.Equal(0, victim.ExitCode);
        // Done by the processor that was told to stop, before it exited: not handed back and done again elsewhere.
        Assert.Equal("done", await db.CreateConnection().QuerySingleAsync<string>(
            "SELECT status FROM jobs WHERE conversion_id = @slow", new { slow }));
        await AssertEveryJobEndedOnceAsync([slow, .. batch]);
        await cluster.StartAsync("Processor");
    }

    [Fact]
    public async Task AProcessorToldToStopFinishesItsJobAndHandsBackTheOneItHoldsUnbegunWhichAnotherDoesOnce()
    {
        foreach (var processor in cluster.Running("Processor"))
            cluster.Stop(processor, "TERM"); // idle, they exit at once
        // One alone takes what comes, with time enough for its job however busy the machine (the cluster's limit: 10 s).
        await cluster.StartAsync("Processor", ("JOB_SECONDS", "300"));
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird"));
        var slow = await PostedIdAsync(photo, "slow: blur 40"); // a few seconds of one core: time to look
        var victim = await WaitForTheBusyProcessorAsync(slow);
        var next = await PostedIdAsync(photo, "next: flip");
        // The next job's message in the processor's hand, beside the one it works on: published (its conversion is
        // expanded once the broker confirmed it), none ready in the queue, and the first job still running.
        var clock = Stopwatch.StartNew();
        while (await PendingAsync([next]) > 0 || await ReadyAsync() > 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the processor never held a second job");
            await Task.Delay(5);
        }
        Assert.Equal(1, await CountAsync([slow], "status = 'running'"));

        cluster.Stop(victim, "TERM");

        Assert.Equal(0, victim.ExitCode);
        // The job it was on finished by it; the one it held handed back unbegun, to the queue, not done on the way out:
        // a copy with a fresh count of deliveries, the original acked (a stop is no fault of the message).
        Assert.Equal(new[] { "done", "queued" }, await db.CreateConnection().QueryAsync<string>(
            "SELECT status FROM jobs WHERE conversion_id = ANY(@ids) ORDER BY id", new { ids = new[] { slow, next } }));
        Assert.Equal(1u, await ReadyAsync()); // none consumes it yet
        Assert.Equal(0, await DeliveriesOfTheFirstReadyAsync()); // a copy: the original returned would count 1
        await cluster.StartAsync("Processor");
        await cluster.StartAsync("Processor");
        await AssertEveryJobEndedOnceAsync([slow, next]);
    }

    [Fact]
    public async Task AProcessorToldToStopHandsBackAJobLongerThanItsGracePeriodWhichAnotherDoesOnce()
    {
        foreach (var processor in cluster.Running("Processor"))
            cluster.Stop(processor, "TERM"); // idle, they exit at once
        await cluster.StartAsync("Processor", ("STOP_SECONDS", "0")); // no grace: whatever it holds goes back
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird"));
        var slow = await PostedIdAsync(photo, "slow: blur 50 | blur 50"); // about 8 s of one core
        var victim = await WaitForTheBusyProcessorAsync(slow);

        cluster.Stop(victim, "TERM");

        Assert.Equal(0, victim.ExitCode);
        Assert.Equal("running", await db.CreateConnection().QuerySingleAsync<string>(
            "SELECT status FROM jobs WHERE conversion_id = @slow", new { slow })); // handed back unfinished
        // Done again by another processor, given time enough for it however busy the machine (the cluster's limit is 10 s).
        await cluster.StartAsync("Processor", ("JOB_SECONDS", "300"));
        await AssertEveryJobEndedOnceAsync([slow]);
        cluster.Stop(cluster.Running("Processor").Single(), "TERM");
        await cluster.StartAsync("Processor");
        await cluster.StartAsync("Processor");
    }

    [Fact]
    public async Task AJobOverItsTimeLimitFailsNamingItAndItsProcessorGoesOn()
    {
        var processors = cluster.Running("Processor").Select(p => p.Id).Order().ToList();
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird"));
        var clock = Stopwatch.StartNew();
        // About a minute of one core, six times the limit: the photo is enlarged to 16 MP, then sharpened ten times, each
        // about 7 s here (sharpen's cost grows with sigma squared).
        var slow = (await http.ConvertAsync(photo, $"slow: resize 200%{string.Concat(Enumerable.Repeat(" | sharpen 5", 10))}")).Job("slow");
        output.WriteLine($"posted to failed: {clock.ElapsedMilliseconds} ms");

        Assert.Equal("failed", slow.GetProperty("status").GetString());
        Assert.Equal($"stopped at the time limit of {Cluster.JobSeconds} s per job (JOB_SECONDS)", slow.GetProperty("error").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(Cluster.JobSeconds + 5), $"it took {clock.Elapsed}");
        Assert.Empty(Directory.GetFiles(Path.Combine(cluster.Nas, "outputs"), $"{slow.GetProperty("id")}.*"));
        await AssertEveryJobEndedOnceAsync(await SubmitBatchAsync(photo));
        Assert.Equal(processors, cluster.Running("Processor").Select(p => p.Id).Order()); // the same processes went on
    }

    [Fact]
    public async Task WorkPostedWhileRabbitMQIsAwayIsAcceptedAndAllOfItCompletesWhenItReturns()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));
        var before = await SubmitBatchAsync(photo);
        await WaitUntilMidBatchAsync(before);
        Helpers.Server("rabbitmq_ctl $TEST_RABBITMQ stop_app");
        long[] during;
        try
        {
            during = await SubmitBatchAsync(photo); // the API needs no broker: each post is recorded and accepted
        }
        finally
        {
            Helpers.Server("rabbitmq_ctl $TEST_RABBITMQ start_app");
        }

        await AssertEveryJobEndedOnceAsync([.. before, .. during]);
    }

    [Fact]
    public async Task PostgresAwayFor30SecondsMidBatchSpendsNoDeliveriesAndNewWorkIsRefusedWith503Meanwhile()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));
        var before = await SubmitBatchAsync(photo);
        await WaitUntilMidBatchAsync(before);
        Helpers.Server("postgres_ctl $TEST_POSTGRES stop");
        try
        {
            await AssertRefusedQuicklyAsync(() => http.PostOperationsAsync(photo, "flip"));
            await AssertRefusedQuicklyAsync(() => http.UploadAsync(Helpers.Sample("flower")));
            await Task.Delay(TimeSpan.FromSeconds(30)); // six times what once used up a message's five deliveries
        }
        finally
        {
            Helpers.Server("postgres_ctl $TEST_POSTGRES start");
            db.Clear(); // the test's own connections, which the restart ended
        }
        await cluster.WaitUntilHealthyAsync();

        await AssertEveryJobEndedOnceAsync([.. before, .. await SubmitBatchAsync(photo)]);
    }

    [Fact]
    public async Task AConverterKilledWhileWorkIsPostedOrTheApiKilledRightAfterLosesNothing()
    {
        // The converter killed while a batch is posted: the API records it all the same, and the converter started
        // next expands what was recorded meanwhile and what its predecessor left half done.
        var posting = SubmitBatchAsync();
        cluster.Stop(cluster.Running("Converter").Single(), "KILL");
        var first = await posting;
        var pending = await PendingAsync(first);
        await cluster.StartAsync("Converter");
        Assert.True(pending > 0, "every conversion was expanded before the converter was killed");
        // And the API, killed as soon as it has accepted a batch.
        var second = await SubmitBatchAsync();
        cluster.Stop(cluster.Running("Api").Single(), "KILL");
        var unfinished = await UnfinishedAsync(second);
        await cluster.StartAsync("Api");
        Assert.True(unfinished > 0, "the batch ended before the fault");

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
            conversions.Add(await PostedIdAsync(photo.Value, Operations));
        return [.. conversions];
    }

    async Task<long> PostedIdAsync(long photo, string operations) =>
        long.Parse((await http.PostConversionAsync(photo, operations)).Split('/')[^1]);

    // The processor at work on the only job of a conversion is the one that spends a core while the other idles.
    async Task<Process> WaitForTheBusyProcessorAsync(long conversion)
    {
        while (await db.CreateConnection().QuerySingleOrDefaultAsync<string>(
            "SELECT status FROM jobs WHERE conversion_id = @conversion", new { conversion }) != "running")
            await Task.Delay(20);
        var processors = cluster.Running("Processor");
        var before = processors.Select(CpuTime).ToList();
        await Task.Delay(500);
        var spent = processors.Zip(before, (process, cpu) => (process, CpuTime(process) - cpu)).ToList();
        output.WriteLine($"CPU in 500 ms: {string.Join(", ", spent.Select(p => $"{p.process.Id}: {p.Item2.TotalMilliseconds} ms"))}");
        return spent.MaxBy(p => p.Item2).process;

        static TimeSpan CpuTime(Process process)
        {
            process.Refresh();
            return process.TotalProcessorTime;
        }
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
        var submitted = conversions.Sum(id => db.CreateConnection().QuerySingle<int>(
            "SELECT count(*) FROM jobs WHERE conversion_id = @id", new { id }));
        output.WriteLine($"jobs submitted {submitted}, completed {done.Count}, failed {failed.Count}, lost " +
            $"{submitted - done.Count - failed.Count}, duplicated {Math.Max(0, jobs.Count - submitted) + files.Count - done.Count}");

        Assert.Equal(submitted, jobs.Count);
        Assert.Equal(submitted, done.Count); // every job of these batches is valid: none may fail for a fault
        Assert.All(failed, job => Assert.False(string.IsNullOrEmpty(job.GetProperty("error").GetString())));
        Assert.Equal(done.Select(id => $"{id}.jpeg").Order(), files.Select(Path.GetFileName).Order());
        Helpers.Run("identify", ["-regard-warnings", .. files]); // every output whole: a truncated one fails to read
        await Helpers.WaitForQueuesToEmptyAsync();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }

    // The batch under way: a job of it done, and others still queued or running, which the caller then strikes.
    async Task WaitUntilMidBatchAsync(long[] conversions)
    {
        for (var clock = Stopwatch.StartNew(); await CountAsync(conversions, "status = 'done'") == 0; await Task.Delay(5))
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "the batch never got under way");
        Assert.True(await UnfinishedAsync(conversions) > 0, "the batch ended before the fault");
    }

    // The batch's work left: its jobs queued or running, and each conversion not yet expanded into its jobs.
    async Task<long> UnfinishedAsync(long[] conversions) =>
        await CountAsync(conversions, "status IN ('queued', 'running')") + await PendingAsync(conversions);

    // Of these conversions, those not yet expanded into their jobs.
    async Task<long> PendingAsync(long[] conversions) => await db.CreateConnection().ExecuteScalarAsync<long>(
        "SELECT count(*) FROM conversions WHERE id = ANY(@conversions) AND expanded IS NULL", new { conversions });

    // The jobs of these conversions in the states the condition names, counted in their rows.
    async Task<long> CountAsync(long[] conversions, string condition) => await db.CreateConnection().ExecuteScalarAsync<long>(
        $"SELECT count(*) FROM jobs WHERE conversion_id = ANY(@conversions) AND {condition}", new { conversions });

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


    // The work queue's first message ready, taken and put back: how many deliveries of it the broker counted before.
    static async Task<long> DeliveriesOfTheFirstReadyAsync()
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var message = await channel.BasicGetAsync("jobs", autoAck: false);
        await channel.BasicRejectAsync(message!.DeliveryTag, requeue: true);
        var headers = message.BasicProperties.Headers;
        return headers is not null && headers.TryGetValue("x-delivery-count", out var count) ? Convert.ToInt64(count) : 0;
    }

    // Messages of the work queue ready for a consumer (not those in one's hand), as the broker counts them.
    static async Task<uint> ReadyAsync()
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        return await channel.MessageCountAsync("jobs");
    }

    static async Task PublishRawAsync(string queue, string body)
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.BasicPublishAsync("", queue, Encoding.UTF8.GetBytes(body));
    }

    async Task<long> ConversionOf(long job) =>
        await db.CreateConnection().QuerySingleAsync<long>("SELECT conversion_id FROM jobs WHERE id = @job", new { job });

}
