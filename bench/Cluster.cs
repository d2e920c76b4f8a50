namespace ImageProcessor.Benchmark;

// The real system over HTTP: the cluster runs, the trivial jobs, the uploads, and the client calls they make.
sealed partial class Bench
{
    // The cluster with P processors: every photo uploaded and its operations file posted, `rounds` times over, timed from
    // the first upload until the last job is done. Per image: the processor's own duration of each job.
    async Task<Result> ClusterAsync(int processors)
    {
        var workers = await StartProcessorsAsync(processors);
        var first = await db.CreateConnection().ExecuteScalarAsync<long>("SELECT coalesce(max(id), 0) FROM conversions");
        var (before, machineBefore) = (started.ToDictionary(p => p.Id, p => CpuTicks(p.Id)), MachineTicks());
        var clock = Stopwatch.StartNew();
        // As a fleet of cameras does: `cores` clients at once, each uploading a photo and posting its operations file.
        await Parallel.ForEachAsync(Enumerable.Range(0, rounds).SelectMany(_ => inputs), new ParallelOptions { MaxDegreeOfParallelism = cores },
            async (input, _) => await PostAsync($"/photos/{await UploadAsync(await File.ReadAllBytesAsync(input), Path.GetFileName(input))}/operations", OperationsFile));
        const string Finished = "SELECT count(*) FROM jobs WHERE conversion_id > @first AND status IN ('done', 'failed')";
        await WaitUntilAsync(async () => await db.CreateConnection().ExecuteScalarAsync<long>(Finished, new { first }) == rounds * jobsPerRound);
        var seconds = clock.Elapsed.TotalSeconds;
        if (processors == cores)
        {
            var used = started.Where(p => before.ContainsKey(p.Id)).GroupBy(p => p.StartInfo.Environment["PROJECT"])
                .Select(g => (Name: g.Key, Seconds: g.Sum(p => CpuTicks(p.Id) - before[p.Id]) / 100.0)).ToList();
            var machine = (MachineTicks() - machineBefore) / 100.0;
            cpu.AddRange(used.Select(u => $"| {u.Name} | {u.Seconds:F1} s |"));
            cpu.Add($"| everything else: Postgres, RabbitMQ, this benchmark's client, the kernel | {machine - used.Sum(u => u.Seconds):F1} s |");
            cpu.Add($"| idle | {cores * seconds - machine:F1} s |");
        }
        var jobs = (await db.CreateConnection().QueryAsync<(string Status, string? Error, int Ms)>(
            "SELECT status, error, duration_ms FROM jobs WHERE conversion_id > @first", new { first })).ToList();
        if (jobs.Where(job => job.Status != "done").Select(job => job.Error).FirstOrDefault() is { } error)
            throw new InvalidOperationException($"a job failed: {error}");
        var peak = workers.Max(worker => PeakKb(worker.Id));
        if (processors != cores)
            Stop(workers); // the last ones stay for the trivial jobs
        return new Result(seconds, [.. jobs.Select(job => (double)job.Ms)], peak);
    }

    // Processors started afresh, each warmed up by trivial jobs (connections opened, code compiled) as a running one is.
    async Task<List<Process>> StartProcessorsAsync(int processors)
    {
        var workers = Enumerable.Range(0, processors).Select(_ => Start("Processor")).ToList();
        started.AddRange(workers);
        await WaitUntilAsync(async () => await ConsumersAsync("jobs") == processors);
        for (var i = 0; i < 50 * processors; i++)
            await TrivialJobAsync();
        return workers;
    }

    List<Process> Processors() => [.. started.Where(p => p.StartInfo.Environment["PROJECT"] == "Processor")];

    // Ends processors of this run at once (their jobs are the benchmark's own), and forgets them.
    void Stop(List<Process> processors)
    {
        foreach (var processor in processors)
        {
            processor.Kill();
            processor.WaitForExit();
            started.Remove(processor);
        }
    }

    // One trivial job: the 32x32 PNG flipped. Timed by the client, from the operations POST until a GET (one every
    // millisecond) says done, and by the database, from the conversion's insert to the job's result.
    async Task<(double Client, double Server)> TrivialJobAsync()
    {
        var began = Stopwatch.GetTimestamp();
        var conversion = await PostAsync($"/photos/{tiny}/operations", "flip");
        while ((await http.GetFromJsonAsync<JsonElement>(conversion)).GetProperty("status").GetString() is not "done")
            await Task.Delay(1);
        var client = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
        return (client, await db.CreateConnection().ExecuteScalarAsync<double>("""
            SELECT extract(epoch FROM max(jobs.updated) - min(conversions.created)) * 1000 FROM conversions JOIN jobs ON conversion_id = conversions.id
            WHERE conversions.id = @id
            """, new { id = long.Parse(conversion.Split('/')[^1]) }));
    }

    // Trivial jobs one after another, on the processors of the last cluster run.
    async Task<(double[] Client, double[] Server)> TrivialJobsAsync()
    {
        var ms = new List<(double Client, double Server)>();
        for (var i = 0; i < trivialJobs; i++)
            ms.Add(await TrivialJobAsync());
        return ([.. ms.Select(m => m.Client)], [.. ms.Select(m => m.Server)]);
    }

    // Uploads of a 200 KB JPEG from 16 clients at once for uploadSeconds: how many the API stores per second.
    async Task<double> UploadsAsync()
    {
        var bytes = await File.ReadAllBytesAsync(Path.Combine(root, "testing", "data", "aqua", "aqua.jpg"));
        var count = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
        {
            while (clock.Elapsed.TotalSeconds < uploadSeconds)
            {
                await UploadAsync(bytes, "aqua.jpg");
                Interlocked.Increment(ref count);
            }
        }));
        return count / clock.Elapsed.TotalSeconds;
    }

    async Task<long> UploadAsync(byte[] bytes, string name)
    {
        using var form = new MultipartFormDataContent { { new ByteArrayContent(bytes), "file", name } };
        var response = await http.PostAsync("/photos", form);
        if (response.StatusCode != HttpStatusCode.Created)
            throw new InvalidOperationException($"upload: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    async Task<string> PostAsync(string path, string operations)
    {
        var response = await http.PostAsync(path, new StringContent(operations, MediaTypeHeaderValue.Parse("text/plain")));
        if (response.StatusCode != HttpStatusCode.Accepted)
            throw new InvalidOperationException($"operations: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return response.Headers.Location!.ToString();
    }

    async Task<uint> ConsumersAsync(string queue)
    {
        await using var connection = await new ConnectionFactory { Uri = new Uri(Env.Bus) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        return await channel.ConsumerCountAsync(queue);
    }
}
