using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace ImageProcessor.Tests;

/// <summary>Upload, operations, poll, download: the whole path of a photo through the real cluster.</summary>
[Collection(nameof(Cluster))]
public sealed class EndToEndTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;

    [Fact]
    public async Task UploadIsStoredAndDescribedFromItsHeader()
    {
        var path = Helpers.Sample("ladybird");
        var response = await http.UploadAsync(path, source: "cam-7");

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var photo = await response.Content.ReadFromJsonAsync<JsonElement>();
        var id = photo.GetProperty("id").GetInt64();
        Assert.Equal($"/photos/{id}", response.Headers.Location?.ToString());
        Assert.Equal((2560, 1600, "jpeg", new FileInfo(path).Length, "cam-7"), (photo.GetProperty("width").GetInt32(),
            photo.GetProperty("height").GetInt32(), photo.GetProperty("format").GetString(), photo.GetProperty("bytes").GetInt64(),
            photo.GetProperty("source").GetString()));
        Assert.Equal(photo.ToString(), (await http.GetFromJsonAsync<JsonElement>($"/photos/{id}")).ToString());
        Assert.Equal(File.ReadAllBytes(path), await cluster.StoredPhotoAsync(id));
    }

    [Fact]
    public async Task EveryOutputIsTheImageItsLineDescribes()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("ladybird")); // 2560x1600
        var conversion = await http.ConvertAsync(photo, """
            thumb: thumbnail 320x180 | format webp
            gray: autoorient | grayscale | resize 640x360
            exact: resize 100x100!
            fill: resize 200x200^ | crop 200x200
            half: resize 50% | quality 70
            turned: rotate 90 | flip | format png
            corner: crop 300x200+10+10 | blur 2 | format gif
            tiff: resize x100 | modulate 120,50 | sharpen 1 | normalize | strip | flop | format tiff
            """);

        Assert.Equal("done", conversion.GetProperty("status").GetString());
        Assert.Equal(photo, conversion.GetProperty("photoId").GetInt64());
        await AssertOutputAsync(conversion.Job("thumb"), "image/webp", "288x180 WEBP sRGB");
        await AssertOutputAsync(conversion.Job("gray"), "image/jpeg", "576x360 JPEG Gray");
        await AssertOutputAsync(conversion.Job("exact"), "image/jpeg", "100x100 JPEG sRGB");
        await AssertOutputAsync(conversion.Job("fill"), "image/jpeg", "200x200 JPEG sRGB");
        await AssertOutputAsync(conversion.Job("half"), "image/jpeg", "1280x800 JPEG sRGB");
        await AssertOutputAsync(conversion.Job("turned"), "image/png", "1600x2560 PNG sRGB");
        await AssertOutputAsync(conversion.Job("corner"), "image/gif", "300x200 GIF sRGB");
        await AssertOutputAsync(conversion.Job("tiff"), "image/tiff", "160x100 TIFF sRGB");
    }

    [Fact]
    public async Task OutputsKeepTheFormatOfTheirPhotoByDefault()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("meadow")); // an 800x640 PNG
        var conversion = await http.ConvertAsync(photo, "thumbnail 80x80");

        await AssertOutputAsync(conversion.Job("1"), "image/png", "80x64 PNG sRGB");
    }

    [Fact]
    public async Task OperationsCanBePostedAsAMultipartFile()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("storm"));
        using var form = new MultipartFormDataContent { { new StringContent("small: resize 10%"), "file", "operations" } };
        var response = await http.PostAsync($"/photos/{photo}/operations", form);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Assert.Equal($"/conversions/{id}", response.Headers.Location?.ToString());
        await AssertOutputAsync((await http.WaitForAsync($"/conversions/{id}")).Job("small"), "image/jpeg", "192x128 JPEG sRGB");
    }

    // A photo whose header is whole is accepted; its pixels, cut off, fail its jobs. A JPEG cut short (an SD card or a
    // link that died mid-photo) is only a warning to libjpeg, which greys what is missing: its jobs fail all the same.
    [Theory]
    [InlineData("gif", 0.1, "corrupt image `the photo' @ error/gif.c/")]
    [InlineData("png", 0.1, "unexpected end-of-file `the photo' @ error/png.c/")]
    [InlineData("jpeg", 0.3, "Premature end of JPEG file `the photo' @ warning/jpeg.c/")]
    [InlineData("jpeg", 0.6, "Premature end of JPEG file `the photo' @ warning/jpeg.c/")]
    [InlineData("jpeg", 0.9, "Premature end of JPEG file `the photo' @ warning/jpeg.c/")]
    public async Task APhotoCutShortFailsItsJobsWithImageMagicksReasonNamingNoPathAndTheClusterGoesOn(
        string format, double kept, string reason)
    {
        var photo = await http.CutPhotoIdAsync(cluster, format, kept);

        // One output resized (a JPEG's decoded at a fraction of its size), one whole.
        var conversion = await http.ConvertAsync(photo, "small: resize 640x360\nsame: flip");

        Assert.Equal("failed", conversion.GetProperty("status").GetString());
        foreach (var job in conversion.GetProperty("jobs").EnumerateArray())
        {
            var id = job.GetProperty("id").GetInt64();
            Assert.Equal("failed", job.GetProperty("status").GetString());
            Assert.StartsWith(reason, job.GetProperty("error").GetString());
            Assert.DoesNotContain(cluster.Nas, job.GetProperty("error").GetString());
            Assert.Equal(JsonValueKind.Null, job.GetProperty("output").ValueKind);
            Assert.Empty(Directory.GetFiles(Path.Combine(cluster.Nas, "outputs"), $"{id}.*"));
            await (await http.GetAsync($"/jobs/{id}/output")).AssertProblemAsync(HttpStatusCode.NotFound, $"job {id} has no output: it is failed");
        }
        var next = await http.ConvertAsync(await http.UploadedIdAsync(Helpers.Sample("aqua")), "flip");
        Assert.Equal("done", next.GetProperty("status").GetString());
    }

    [Fact]
    public async Task TheSampleCameraClientProcessesEverySample()
    {
        var output = Helpers.Run("env", $"API={cluster.Address.ToString().TrimEnd('/')}", $"API_KEY={Cluster.ApiKey}", $"OUT={cluster.Scratch}/client",
            Path.Combine(Cluster.Root, "testing", "data", "test.sh"));

        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var expected = Directory.GetDirectories(Path.Combine(Cluster.Root, "testing", "data")).Sum(dir =>
            Operations.Parse(File.ReadAllText(Path.Combine(dir, "operations"))).Count);
        Assert.Equal(expected, lines.Length);
        Assert.All(lines, line => Assert.Contains(" done ", line));
        Assert.Equal(expected, Directory.GetFiles(Path.Combine(cluster.Scratch, "client")).Length);
    }

    async Task AssertOutputAsync(JsonElement job, string contentType, string identified)
    {
        Assert.Equal("done", job.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, job.GetProperty("error").ValueKind);
        var response = await http.GetAsync(job.GetProperty("output").GetString());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(contentType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(identified, Helpers.Identify(await response.Content.ReadAsByteArrayAsync()));
    }
}
