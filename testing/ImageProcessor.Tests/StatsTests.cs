using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;

namespace ImageProcessor.Tests;

/// <summary>GET /stats, whose counts Postgres keeps as the rows change (db/schema.sql's tallies and a conversion's own
/// counts of its jobs) instead of counting the tables at each call.</summary>
[Collection(nameof(Cluster))]
public sealed class StatsTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));

    [Fact]
    public async Task ItsCountsAreTheTablesOwnWhateverHappensToTheJobs()
    {
        // Twelve outputs finishing together on two processors, a job that fails, a conversion that cannot be expanded
        // (written around the API), a job delivered again once done, and one set back by hand and done again.
        var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));
        var many = await http.ConvertAsync(photo, string.Join('\n', Enumerable.Range(1, 12).Select(i => $"o{i}: resize {i}0x")));
        var cut = await http.CutPhotoIdAsync(cluster, "gif", 0.1);
        Assert.Equal("failed", (await http.ConvertAsync(cut, "resize 10x10")).GetProperty("status").GetString());
        var unparsed = await db.CreateConnection().ExecuteScalarAsync<long>(
            "INSERT INTO conversions (photo_id, operations) VALUES (@photo, 'rotat 90') RETURNING id", new { photo });
        Assert.Equal("failed", (await http.WaitForAsync($"/conversions/{unparsed}")).GetProperty("status").GetString());
        var (again, reset) = (many.Job("o1").GetProperty("id").GetInt64(), many.Job("o2").GetProperty("id").GetInt64());
        await db.CreateConnection().ExecuteAsync("UPDATE jobs SET status = 'running' WHERE id = @reset", new { reset });
        Assert.Equal("running", (await http.GetFromJsonAsync<JsonElement>($"/conversions/{many.GetProperty("id")}")).GetProperty("status").GetString());
        var bus = await Bus.ConnectAsync();
        await bus.PublishAsync("jobs", new Message(again));
        await bus.PublishAsync("jobs", new Message(reset));
        await Helpers.WaitForQueuesToEmptyAsync();
        Assert.Equal("done", (await http.WaitForAsync($"/conversions/{many.GetProperty("id")}")).GetProperty("status").GetString());

        await AssertTheCountsAreTheTablesOwnAsync();
    }

    [Fact]
    public async Task TheSchemaAppliedAgainWhileTheServicesWorkFailsNothingAndTheCountsStayExact()
    {
        // As compose's one-shot schema service applies it on every `up`, while the services already run: here during a
        // batch of 20 conversions of 8 outputs each, posted at once.
        var photo = await http.UploadedIdAsync(Helpers.Sample("storm"));
        var outputs = string.Join('\n', Enumerable.Range(1, 8).Select(i => $"o{i}: resize {i}%"));
        var posted = Enumerable.Range(0, 20).Select(_ => http.PostConversionAsync(photo, outputs)).ToArray();
        for (var i = 0; i < 5; i++)
            Helpers.Psql(Path.Combine(Cluster.Root, "db", "schema.sql"));
        foreach (var conversion in await Task.WhenAll(posted))
            Assert.Equal("done", (await http.WaitForAsync(conversion)).GetProperty("status").GetString());
        await AssertTheCountsAreTheTablesOwnAsync();
    }

    // /stats and the jobs finished per minute, read while the tables' counts hold still.
    async Task AssertTheCountsAreTheTablesOwnAsync()
    {
        var ((stats, finished), counts) = await Helpers.ReadSettledAsync(db, async () =>
        {
            var stats = await http.GetFromJsonAsync<JsonElement>("/stats");
            var since = stats.GetProperty("minutes")[0].GetProperty("at").GetDateTimeOffset();
            return (stats, await FinishedPerMinuteAsync(since));
        });
        Helpers.AssertStatsAreTheTablesCounts(stats, counts);
        foreach (var minute in stats.GetProperty("minutes").EnumerateArray())
            Assert.Equal(finished.GetValueOrDefault(minute.GetProperty("at").GetDateTimeOffset()),
                (minute.GetProperty("done").GetInt64(), minute.GetProperty("failed").GetInt64()));
    }

    // Jobs done and failed in each minute since the first of the page's hour, counted in the jobs table.
    async Task<Dictionary<DateTimeOffset, (long Done, long Failed)>> FinishedPerMinuteAsync(DateTimeOffset since) =>
        (await db.CreateConnection().QueryAsync<(DateTime Minute, long Done, long Failed)>("""
            SELECT date_trunc('minute', updated), count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed')
            FROM jobs WHERE updated >= @since GROUP BY 1
            """, new { since = since.ToUniversalTime() })).ToDictionary(m => new DateTimeOffset(m.Minute, TimeSpan.Zero), m => (m.Done, m.Failed));
}
