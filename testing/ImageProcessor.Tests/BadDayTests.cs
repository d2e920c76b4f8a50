using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;

namespace ImageProcessor.Tests;

/// <summary>A factory's bad day: every camera at once, a NAS that fills up, a database made by an earlier version.</summary>
[Collection(nameof(Cluster))]
public sealed class BadDayTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));

    // 200 uploads at once, five times the API's pool of 40 connections (Api/Program.cs): each waits for a connection
    // rather than failing, and each answer is the truth: a 201 has its row and its file, and nothing else is left.
    [Fact]
    public async Task ASurgeOfUploadsIsQueuedNotRefusedAndEachAnswerIsTheTruth()
    {
        var source = $"surge-{Guid.NewGuid():N}"[..20];
        var photo = File.ReadAllBytes(Helpers.Sample("aqua"));
        var responses = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => http.UploadAsync(photo, "aqua.jpg", source)));

        foreach (var response in responses)
            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var answered = await Task.WhenAll(responses.Select(async r =>
            (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64()));
        var rows = (await db.CreateConnection().QueryAsync<(long Id, string Path)>(
            "SELECT id, path FROM photos WHERE source = @source", new { source })).ToList();
        Assert.Equal(answered.Order(), rows.Select(row => row.Id).Order());
        Assert.All(rows, row => Assert.Equal(photo, File.ReadAllBytes(Path.Combine(cluster.Nas, row.Path))));
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(cluster.Nas, "photos")), file => Path.GetExtension(file) == "");
    }

    // The NAS's folders on volumes too small for what comes (tmpfs, mounted over them as root): an upload is 507 and a
    // job fails saying so, neither leaves a file, nothing is retried, and with room again the same services go on.
    [Fact]
    public async Task AFullNasIsAnErrorThatSaysSoLeavesNothingAndTheClusterGoesOnOnceThereIsRoom()
    {
        var (photos, outputs) = (Path.Combine(cluster.Nas, "photos"), Path.Combine(cluster.Nas, "outputs"));
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird"));
        var processors = cluster.Running("Processor").Select(p => p.Id).Order().ToList();
        Helpers.Run("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", photos);
        try
        {
            var upload = await http.UploadAsync(Helpers.Sample("storm")); // 678 KiB
            await upload.AssertProblemAsync(HttpStatusCode.InsufficientStorage, "the NAS is full");
            Assert.Empty(Directory.GetFiles(photos));
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        }
        finally
        {
            Helpers.Run("umount", photos);
        }
        Helpers.Run("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", outputs);
        JsonElement job;
        try
        {
            job = (await http.ConvertAsync(photo, "big: format png")).Job("big"); // 2560x1600 as PNG: megabytes
            Assert.Empty(Directory.GetFiles(outputs));
        }
        finally
        {
            Helpers.Run("umount", outputs);
        }
        Assert.Equal(("failed", "the NAS is full"), (job.GetProperty("status").GetString(), job.GetProperty("error").GetString()));
        var failures = (await http.GetFromJsonAsync<JsonElement>("/stats")).GetProperty("failures").EnumerateArray();
        Assert.Contains(failures, failure => failure.GetProperty("job").GetInt64() == job.GetProperty("id").GetInt64()
            && failure.GetProperty("error").GetString() == "the NAS is full");

        Assert.Equal(HttpStatusCode.Created, (await http.UploadAsync(Helpers.Sample("storm"))).StatusCode);
        Assert.Equal("done", (await http.ConvertAsync(photo, "big: format png")).GetProperty("status").GetString());
        Assert.Equal(processors, cluster.Running("Processor").Select(p => p.Id).Order());
    }

    // A database made by main before the tallies (its schema.sql read from git), with conversions in every state,
    // brought up to date by today's schema: /stats equals the tables' own counts, and so it stays as new work comes,
    // after a TRUNCATE, and after writes made with the triggers off, once the one line of README has rebuilt them.
    [Fact]
    public async Task ADatabaseMadeByAnEarlierMainIsCountedOnceUpgradedAndStaysSo()
    {
        var schema = $"upgrade_{Guid.NewGuid():N}"[..20];
        await db.CreateConnection().ExecuteAsync($"CREATE SCHEMA {schema}");
        await using var upgraded = NpgsqlDataSource.Create($"{Env.Database(pool: 4)};Search Path={schema}");
        var earlier = Path.Combine(cluster.Scratch, "earlier-schema.sql");
        File.WriteAllText(earlier, Helpers.Run("git", "-C", Cluster.Root, "show", "557fa50:db/schema.sql"));
        Process? api = null;
        try
        {
            Helpers.Psql(earlier, schema);
            await upgraded.CreateConnection().ExecuteAsync("""
                INSERT INTO photos (path, format, width, height, bytes) SELECT 'photos/x.jpeg', 'jpeg', 8, 8, 64
                    FROM generate_series(1, 3);
                INSERT INTO conversions (photo_id, operations, expanded, error) VALUES (1, 'flip', NULL, NULL),
                    (1, 'a: flip\nb: flop', now(), NULL), (2, 'flip', now(), NULL), (2, 'a: flip\nb: flop', now(), NULL),
                    (3, 'rotat', now(), 'line 1: unknown operation ''rotat''');
                INSERT INTO jobs (conversion_id, name, steps, status, updated) VALUES
                    (2, 'a', '[]', 'queued', now()), (2, 'b', '[]', 'running', now()), (3, '1', '[]', 'done', now()),
                    (4, 'a', '[]', 'done', now() - interval '2 hours'), (4, 'b', '[]', 'failed', now());
                """);
            Helpers.Psql(Path.Combine(Cluster.Root, "db", "schema.sql"), schema);
            Helpers.Psql(Path.Combine(Cluster.Root, "db", "schema.sql"), schema); // again, as every start applies it
            var database = $"{Environment.GetEnvironmentVariable("DATABASE")};Search Path={schema}";
            (api, var client, _) = await Cluster.StartApiAsync(("NAS", cluster.Nas), ("DATABASE", database));
            await AssertStatsAreTheTablesOwnAsync(client, upgraded);

            // New work, by the API and by the converter's and a processor's statements, each counted once.
            var photo = await client.UploadedIdAsync(Helpers.Sample("flower"));
            var conversion = (await (await client.PostOperationsAsync(photo, "a: flip\nb: flop")).Content
                .ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            await upgraded.CreateConnection().ExecuteAsync("""
                INSERT INTO jobs (conversion_id, name, steps) VALUES (@conversion, 'a', '[]'), (@conversion, 'b', '[]');
                UPDATE conversions SET expanded = now() WHERE id = @conversion;
                UPDATE jobs SET status = 'running', updated = now() WHERE conversion_id IN (@conversion, 2);
                UPDATE jobs SET status = 'done', updated = now() WHERE conversion_id IN (@conversion, 2);
                UPDATE jobs SET status = 'done', updated = now() WHERE conversion_id = @conversion;
                """, new { conversion });
            await AssertStatsAreTheTablesOwnAsync(client, upgraded);

            await upgraded.CreateConnection().ExecuteAsync("TRUNCATE jobs, conversions, photos");
            await AssertStatsAreTheTablesOwnAsync(client, upgraded);

            await upgraded.CreateConnection().ExecuteAsync("""
                ALTER TABLE photos DISABLE TRIGGER tally_added;
                INSERT INTO photos (path, format, width, height, bytes) VALUES ('photos/y.jpeg', 'jpeg', 8, 8, 64);
                ALTER TABLE photos ENABLE TRIGGER tally_added;
                """);
            var stats = await client.GetFromJsonAsync<JsonElement>("/stats");
            Assert.NotEqual(await upgraded.CreateConnection().ExecuteScalarAsync<long>("SELECT count(*) FROM photos"),
                stats.GetProperty("photos").GetInt64()); // the drift the rebuild is for
            await upgraded.CreateConnection().ExecuteAsync("SELECT rebuild_tallies()");
            await AssertStatsAreTheTablesOwnAsync(client, upgraded);
        }
        finally
        {
            api?.Kill(entireProcessTree: true);
            await db.CreateConnection().ExecuteAsync($"DROP SCHEMA {schema} CASCADE");
        }
    }

    static async Task AssertStatsAreTheTablesOwnAsync(HttpClient client, NpgsqlDataSource upgraded)
    {
        var (stats, counts) = await Helpers.ReadSettledAsync(upgraded, () => client.GetFromJsonAsync<JsonElement>("/stats"));
        Helpers.AssertStatsAreTheTablesCounts(stats, counts);
    }
}
