using System.Text.Json;
using Dapper;
using Npgsql;

namespace ImageProcessor.Tests;

/// <summary>Delivery is at least once: a message handled twice must leave the same single result.</summary>
[Collection(nameof(Cluster))]
public sealed class DeliveryTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));

    [Fact]
    public async Task AConversionExpandedAgainMakesNoSecondJob()
    {
        var conversion = await http.ConvertAsync(await http.UploadedIdAsync(Helpers.Sample("garden")), "a: flip\nb: flop");
        var id = conversion.GetProperty("id").GetInt64();

        // What a converter that died after making the jobs, before marking the conversion expanded, leaves behind.
        await db.CreateConnection().ExecuteAsync("UPDATE conversions SET expanded = NULL WHERE id = @id; NOTIFY conversions", new { id });
        for (var tries = 0; await db.CreateConnection().QuerySingleAsync<DateTime?>(
            "SELECT expanded FROM conversions WHERE id = @id", new { id }) is null; tries++)
        {
            Assert.True(tries < 200, "the conversion was not expanded again");
            await Task.Delay(50);
        }
        await Helpers.WaitForQueuesToEmptyAsync();

        var again = await http.WaitForAsync($"/conversions/{id}");
        Assert.Equal(conversion.GetProperty("jobs").ToString(), again.GetProperty("jobs").ToString());
    }

    [Fact]
    public async Task AConversionThatCannotBeExpandedEndsFailedWithTheParsersReason()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("storm"));
        // The API refuses such a file with 400, so it is written as anything else that records a conversion would.
        var id = await db.CreateConnection().QuerySingleAsync<long>(
            "INSERT INTO conversions (photo_id, operations) VALUES (@photo, 'thumb: resize 64x64\nrotat 90') RETURNING id", new { photo });

        var conversion = await http.WaitForAsync($"/conversions/{id}");
        Assert.Equal("failed", conversion.GetProperty("status").GetString());
        Assert.Equal("line 2: unknown operation 'rotat'", conversion.GetProperty("error").GetString());
        Assert.Empty(conversion.GetProperty("jobs").EnumerateArray());
    }

    [Fact]
    public async Task ABurstLargerThanTheConverterTakesAtOnceIsExpandedWholeAMistakeInItFailingAlone()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("garden"));
        // 250 conversions in one statement, more than one expansion takes (100): what a burst of posts leaves waiting.
        var ids = (await db.CreateConnection().QueryAsync<long>("""
            INSERT INTO conversions (photo_id, operations)
            SELECT @photo, CASE WHEN i = 150 THEN 'rotat 90' ELSE 'a: resize 1%' || chr(10) || 'b: flip | resize 1%' END
            FROM generate_series(1, 250) AS i RETURNING id
            """, new { photo })).Order().ToArray();

        var conversions = new List<JsonElement>();
        foreach (var id in ids)
            conversions.Add(await http.WaitForAsync($"/conversions/{id}"));
        await Helpers.WaitForQueuesToEmptyAsync();

        var mistake = conversions[149];
        Assert.Equal(("failed", "line 1: unknown operation 'rotat'", 0), (mistake.GetProperty("status").GetString(),
            mistake.GetProperty("error").GetString(), mistake.GetProperty("jobs").GetArrayLength()));
        Assert.All(conversions.Where((_, i) => i != 149), conversion =>
        {
            Assert.Equal("done", conversion.GetProperty("status").GetString());
            Assert.Equal(new[] { "a", "b" }, conversion.GetProperty("jobs").EnumerateArray().Select(job => job.GetProperty("name").GetString()));
        });
        Assert.Equal(249 * 2, await db.CreateConnection().ExecuteScalarAsync<long>(
            "SELECT count(*) FROM jobs WHERE conversion_id = ANY(@ids) AND status = 'done'", new { ids }));
        // Expanded in a few transactions of up to 100 (each marks its conversions with its own now()), not one each.
        var expansions = await db.CreateConnection().ExecuteScalarAsync<long>(
            "SELECT count(DISTINCT expanded) FROM conversions WHERE id = ANY(@ids)", new { ids });
        Assert.True(expansions is >= 3 and <= 10, $"250 conversions expanded in {expansions} transactions");
    }

    [Fact]
    public async Task AJobDeliveredTwiceAfterItIsDoneIsLeftAsItWas()
    {
        var job = (await http.ConvertAsync(await http.UploadedIdAsync(Helpers.Sample("storm")), "resize 10%")).Job("1");
        var id = job.GetProperty("id").GetInt64();
        var before = await db.CreateConnection().QuerySingleAsync<DateTime>("SELECT updated FROM jobs WHERE id = @id", new { id });

        var bus = await Bus.ConnectAsync();
        await bus.PublishAsync("jobs", new Message(id));
        await bus.PublishAsync("jobs", new Message(id));
        await Helpers.WaitForQueuesToEmptyAsync();

        Assert.Equal(before, await db.CreateConnection().QuerySingleAsync<DateTime>("SELECT updated FROM jobs WHERE id = @id", new { id }));
        Assert.Equal([$"{id}.jpeg"], Outputs(id));
    }

    [Fact]
    public async Task AJobLeftRunningByACrashIsDoneAgainIntoItsOneOutput()
    {
        var job = (await http.ConvertAsync(await http.UploadedIdAsync(Helpers.Sample("flower")), "format png")).Job("1");
        var id = job.GetProperty("id").GetInt64();
        // What a processor that died after claiming the job would have left behind.
        await db.CreateConnection().ExecuteAsync("UPDATE jobs SET status = 'running', output = NULL WHERE id = @id", new { id });

        var bus = await Bus.ConnectAsync();
        await bus.PublishAsync("jobs", new Message(id));
        await Helpers.WaitForQueuesToEmptyAsync();

        var conversion = await http.WaitForAsync($"/conversions/{Conversion(id)}");
        Assert.Equal("done", conversion.Job("1").GetProperty("status").GetString());
        Assert.Equal([$"{id}.png"], Outputs(id));
        Assert.Equal("2560x1600 PNG sRGB", Helpers.Identify(await http.GetByteArrayAsync($"/jobs/{id}/output")));
    }

    string[] Outputs(long job) =>
        [.. Directory.GetFiles(Path.Combine(cluster.Nas, "outputs"), $"{job}.*").Select(Path.GetFileName).OfType<string>()];

    long Conversion(long job) =>
        db.CreateConnection().QuerySingle<long>("SELECT conversion_id FROM jobs WHERE id = @job", new { job });
}
