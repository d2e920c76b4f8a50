using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Npgsql;

namespace ImageProcessor.Tests;

/// <summary>The status page at /, in a real browser: Debian's chromium, headless.</summary>
[Collection(nameof(Cluster))]
public sealed class StatusPageTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;
    readonly NpgsqlDataSource db = NpgsqlDataSource.Create(Env.Database(pool: 10));
    /// <summary>Where the screenshot is kept, outside the scratch folder that the test command removes.</summary>
    static readonly string Artifacts = Path.Combine(Cluster.Root, "testing", "artifacts");

    [Fact]
    public async Task ThePageShowsTheDatabasesCountsAndTheReasonOfAFailure()
    {
        // A batch with a failing job: a GIF whose header is whole and whose pixels are cut off.
        var broken = await http.CutPhotoIdAsync(cluster, "gif", 0.1);
        var failed = (await http.ConvertAsync(broken, "resize 10x10")).Job("1").GetProperty("error").GetString()!;
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird"));
        await http.ConvertAsync(photo, "thumb: thumbnail 160x100\ngray: grayscale | resize 200x\nsmall: resize 10%");

        var (page, counts) = await SettledPageAsync();

        foreach (var (name, count) in counts)
            Assert.True(Shown(page, name) == count, $"the page shows {Shown(page, name)} for {name}, the database {count}");
        Assert.Contains(failed.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;"), page); // as the DOM serialises text
        Assert.Contains("data-loaded=\"true\"", page);
        Assert.Matches("<img src=\"blob:", page); // the outputs' thumbnails, fetched with the key

        Directory.CreateDirectory(Artifacts);
        var screenshot = Path.Combine(Artifacts, "status-page.png");
        File.Delete(screenshot);
        Chromium("--window-size=1280,1300", $"--screenshot={screenshot}", $"{cluster.Address}#key={Cluster.ApiKey}");
        Assert.True(new FileInfo(screenshot).Length > 10_000, "no screenshot");
    }

    [Fact]
    public async Task WithoutTheKeyThePageHoldsNoDataAndAsksForIt()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await new HttpClient { BaseAddress = cluster.Address }.GetAsync("/stats")).StatusCode);

        var page = Chromium("--dump-dom", cluster.Address.ToString());

        Assert.Matches("<form id=\"key\">", page); // no longer hidden
        Assert.Matches("data-count=\"photos\">–<", page);
        Assert.DoesNotContain("data-loaded", page);
    }

    /// <summary>The page as the browser shows it, with the database's counts read before and after: the two agree
    /// once nothing is in flight.</summary>
    Task<(string Page, Dictionary<string, long> Counts)> SettledPageAsync() =>
        Helpers.ReadSettledAsync(db,
            () => Task.FromResult(Chromium("--dump-dom", $"{cluster.Address}#key={Cluster.ApiKey}")));

    static long Shown(string page, string name) =>
        long.Parse(Regex.Match(page, $"data-count=\"{Regex.Escape(name)}\">([0-9]+)<").Groups[1].Value);

    /// <summary>Runs Debian's chromium headless in a fresh profile, with the network calls of its own turned off, and
    /// lets the page's scripts run (virtual time) before it dumps or shoots.</summary>
    static string Chromium(params string[] arguments) => Helpers.Run("chromium", [.. Flags(), .. arguments]);

    static string[] Flags() =>
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000",
        $"--user-data-dir={Directory.CreateTempSubdirectory("chromium-").FullName}",
    ];
}
