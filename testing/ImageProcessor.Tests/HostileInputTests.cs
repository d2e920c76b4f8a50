using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace ImageProcessor.Tests;

/// <summary>Input meant to break or subvert the cluster: a clear 4xx or a failed job, never a 500, a hang or a crash.</summary>
[Collection(nameof(Cluster))]
public sealed class HostileInputTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;

    [Fact]
    public async Task FuzzedOperationsFilesAreRefusedWithALineNumberOrAccepted()
    {
        var random = new Random(3);
        var pieces = new[] { "resize", "thumbnail", "crop", "rotate", "blur", "format", "quality", "modulate", "flip", "x:",
            "|", "#", "\n", " ", "640x360", "50%", "-1", "1e309", "+0+0", "!^<>", "../..", "\0", "ä", "::", "10000x10000", "jpeg" };
        var scripts = Enumerable.Range(0, 3000).Select(_ => string.Concat(Enumerable.Range(0, random.Next(1, 30))
            .Select(_ => random.Next(4) == 0 ? ((char)random.Next(1, 0x3000)).ToString() : pieces[random.Next(pieces.Length)])));
        foreach (var script in scripts)
            try
            {
                Operations.Parse(script);
            }
            catch (OperationsException e)
            {
                Assert.Matches(@"^line \d+: ", e.Message);
            }
        // Photo 0 does not exist: a script that parses is 404, one that does not is 400; nothing is ever 500.
        foreach (var script in scripts.Take(1000))
        {
            var response = await http.PostOperationsAsync(0, script);
            Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{response.StatusCode} for {script}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
    }

    [Theory]
    [InlineData("exploit.svg", """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64"><image xlink:href="https://example.com/x.jpg" width="64" height="64"/></svg>""")]
    [InlineData("exploit.mvg", "push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://example.com/x.jpg\"|ls \"-la)'\npop graphic-context\n")]
    [InlineData("exploit.msl", """<?xml version="1.0" encoding="UTF-8"?><image><read filename="/etc/passwd"/><write filename="/tmp/x.png"/></image>""")]
    public async Task ImageTragickPayloadsAreRefusedBeforeAnyCoderRuns(string name, string content)
    {
        // The payload is the body: the API never uses a multipart file name (names are tried on the policy, below).
        var response = await http.UploadAsync(Encoding.UTF8.GetBytes(content), name);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public void OurPolicyRefusesEveryCoderButTheFiveFormats()
    {
        var svg = Path.Combine(cluster.Scratch, "policy.svg");
        File.WriteAllText(svg, """<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>""");

        // Read by name, as no service reads a photo (they name its format, or read the upload as a stream), so that the
        // name's own prefixes are tried too.
        Assert.Contains("not authorized by the security policy `SVG'", Assert.ThrowsAny<MagickException>(() => new MagickImageInfo(svg)).Message);
        Assert.Contains("not authorized by the security policy `MSL'", Assert.ThrowsAny<MagickException>(() => new MagickImageInfo($"msl:{svg}")).Message);
        Assert.Contains("not authorized by the security policy", Assert.ThrowsAny<MagickException>(() => new MagickImageInfo($"@{svg}")).Message);
    }

    [Fact]
    public async Task APngClaiming30000By30000PixelsIsRefusedBeforeItsPixelsAreRead()
    {
        // A real 1x1 PNG whose header is rewritten to claim 30000x30000: a decompression bomb, if anything decoded it.
        var small = Path.Combine(cluster.Scratch, "dot.png");
        Helpers.Run("convert", "-size", "1x1", "xc:red", small);
        var png = File.ReadAllBytes(small);
        BitConverter.GetBytes(BigEndian(30000)).CopyTo(png, 16);
        BitConverter.GetBytes(BigEndian(30000)).CopyTo(png, 20);
        BitConverter.GetBytes(BigEndian(Crc32(png.AsSpan(12, 17)))).CopyTo(png, 29);

        var response = await http.UploadAsync(png, "bomb.png");
        Assert.True(response.StatusCode is HttpStatusCode.UnprocessableEntity or HttpStatusCode.UnsupportedMediaType, $"{response.StatusCode}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("animated.gif", new[] { "-size", "64x64", "xc:red", "xc:blue", "-duplicate", "299", "-loop", "0" }, "32x32 GIF")]
    [InlineData("cmyk.jpg", new[] { "-size", "64x64", "xc:orange", "-colorspace", "cmyk" }, "32x32 JPEG")]
    [InlineData("deep.png", new[] { "-size", "64x64", "gradient:", "-depth", "16" }, "32x32 PNG")]
    public async Task UnusualButValidImagesAreProcessed(string name, string[] make, string expected)
    {
        var path = Path.Combine(cluster.Scratch, name);
        Helpers.Run("convert", [.. make, path]);
        var photo = await http.UploadedIdAsync(path);

        var job = (await http.ConvertAsync(photo, "autoorient | resize 50%")).Job("1");
        Assert.Equal("done", job.GetProperty("status").GetString());
        Assert.StartsWith(expected, Helpers.Identify(await http.GetByteArrayAsync(job.GetProperty("output").GetString())));
    }

    [Fact]
    public async Task NamesAndIdsNeverReachAPath()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("flower"));

        await (await http.PostOperationsAsync(photo, "../../etc/passwd: flip")).AssertProblemAsync(
            HttpStatusCode.BadRequest, "line 1: invalid name '../../etc/passwd'");
        await (await http.UploadAsync(File.ReadAllBytes(Helpers.Sample("flower")), "../../x.jpg", "../cam")).AssertProblemAsync(
            HttpStatusCode.BadRequest, "invalid source '../cam': 1 to 64 letters, digits, '-' or '_'");
        foreach (var path in new[] { "/jobs/..%2F..%2Fetc%2Fpasswd/output", "/photos/1%2F..%2F..%2Fetc" })
            await (await http.GetAsync(path)).AssertProblemAsync(HttpStatusCode.NotFound, $"Not Found: {path}");
        await (await http.GetAsync("/jobs/-1/output")).AssertProblemAsync(HttpStatusCode.NotFound, "no job -1");
        await (await http.GetAsync("/photos/../etc/passwd")).AssertProblemAsync(HttpStatusCode.NotFound, "Not Found: /etc/passwd");
    }

    [Fact]
    public async Task WithAnApiKeyEveryEndpointButHealthAndThePagesFilesWantsIt()
    {
        using var stranger = new HttpClient { BaseAddress = cluster.Address };
        Assert.Equal(HttpStatusCode.OK, (await stranger.GetAsync("/healthz")).StatusCode);
        foreach (var file in new[] { "/", "/index.html", "/status.js", "/status.css" })
            Assert.Equal(HttpStatusCode.OK, (await stranger.GetAsync(file)).StatusCode);
        foreach (var path in new[] { "/photos/1", "/photos", "/stats", "/conversions/1", "/jobs/1/output", "/nothing" })
            await (await stranger.GetAsync(path)).AssertProblemAsync(HttpStatusCode.Unauthorized,
                "send the API key as the header 'Authorization: Bearer <key>'");
        stranger.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.PostAsync("/photos", new StringContent("x"))).StatusCode);
    }

    static int BigEndian(int value) => IPAddress.HostToNetworkOrder(value);

    static int Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return (int)~crc;
    }
}
