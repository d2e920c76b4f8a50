using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace ImageProcessor.Tests;

/// <summary>What the API keeps of each photo, how it is queried, and how an upload reaches the NAS: once checked, whole.</summary>
[Collection(nameof(Cluster))]
public sealed class PhotoTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;
    static string Wood => Path.Combine(Cluster.Root, "testing", "photos", "wood.jpg");

    [Fact]
    public async Task APhotoKeepsItsSizeFormatSourceAndUploadTime()
    {
        var before = DateTimeOffset.UtcNow;
        var response = await http.UploadAsync(Wood, "exif-cam");

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var photo = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(640, photo.GetProperty("width").GetInt32());
        Assert.Equal(480, photo.GetProperty("height").GetInt32());
        Assert.Equal("jpeg", photo.GetProperty("format").GetString());
        Assert.Equal(new FileInfo(Wood).Length, photo.GetProperty("bytes").GetInt64());
        Assert.Equal("exif-cam", photo.GetProperty("source").GetString());
        Assert.InRange(photo.GetProperty("created").GetDateTimeOffset(), before.AddSeconds(-1), DateTimeOffset.UtcNow.AddSeconds(1));
        // EXIF's capture time and camera model are no longer read (README's known gaps).
        Assert.Equal(["id", "width", "height", "format", "bytes", "source", "created"], photo.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task PhotosAreListedNewestFirstUpToTheLimitBySourceAndSince()
    {
        var source = $"list-{Guid.NewGuid():N}"[..20];
        var ids = new List<long>();
        foreach (var sample in new[] { "aqua", "flower", "storm" })
            ids.Add((await (await http.UploadAsync(Helpers.Sample(sample), source)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64());
        await http.UploadAsync(Helpers.Sample("garden"), "another-camera");

        var first = await http.GetFromJsonAsync<JsonElement>($"/photos?source={source}&limit=2");
        Assert.Equal([ids[2], ids[1]], Ids(first));
        Assert.All(first.EnumerateArray(), photo => Assert.Equal(source, photo.GetProperty("source").GetString()));

        var since = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("O"));
        Assert.Empty(Ids(await http.GetFromJsonAsync<JsonElement>($"/photos?source={source}&since={since}")));
        since = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(-5).ToString("O"));
        Assert.Equal([ids[2], ids[1], ids[0]], Ids(await http.GetFromJsonAsync<JsonElement>($"/photos?source={source}&since={since}")));
        Assert.Contains(ids[2], Ids(await http.GetFromJsonAsync<JsonElement>("/photos")));
    }

    [Theory]
    [InlineData("limit=0", "invalid limit 0: from 1 to 1000")]
    [InlineData("limit=1001", "invalid limit 1001: from 1 to 1000")]
    [InlineData("limit=ten", "Failed to bind parameter \"int limit\" from \"ten\".")]
    [InlineData("since=yesterday", "Failed to bind parameter \"Nullable<DateTimeOffset> since\" from \"yesterday\".")]
    public async Task ABadQueryParameterIs400NamingIt(string query, string detail) =>
        await (await http.GetAsync($"/photos?{query}")).AssertProblemAsync(HttpStatusCode.BadRequest, detail);

    [Fact]
    public async Task AnUploadReachesTheNasOnlyOnceWholeAndChecked()
    {
        var photo = File.ReadAllBytes(Helpers.Sample("storm")); // 678 KiB
        var (half, resume) = (new TaskCompletionSource(), new TaskCompletionSource());
        var photos = Path.Combine(cluster.Nas, "photos");
        var upload = http.PostAsync("/photos", new PausedMultipart(photo, half, resume));

        // Half the body sent and the rest held back, while the API has had a second to write it: nothing is on the NAS.
        await half.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(1000);
        Assert.DoesNotContain(Directory.GetFiles(photos), file => Path.GetExtension(file) == "");
        resume.SetResult();

        var response = await upload;
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.DoesNotContain(Directory.GetFiles(photos), file => Path.GetExtension(file) == ""); // no temporary file left
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Assert.Equal(photo, await cluster.StoredPhotoAsync(id));
    }

    const string CutShort = "Unexpected end of Stream, the content may have already been read by another component. ";

    [Theory]
    [InlineData("", "send the photo as the multipart form field 'file'")] // a multipart type, and no body: no part
    [InlineData("hello, camera", CutShort)] // no boundary at all
    [InlineData("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nno closing boundary", CutShort)]
    public async Task ABrokenMultipartBodyIs400(string body, string detail)
    {
        var content = new StringContent(body);
        content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=x");

        await (await http.PostAsync("/photos", content)).AssertProblemAsync(HttpStatusCode.BadRequest, detail);
    }

    [Fact]
    public async Task OfTwoFilesInOneUploadTheFirstIsThePhoto()
    {
        var first = File.ReadAllBytes(Helpers.Sample("aqua"));
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(first), "file", "aqua.jpg" },
            { new ByteArrayContent(File.ReadAllBytes(Helpers.Sample("meadow"))), "file", "meadow.png" },
        };
        var response = await http.PostAsync("/photos", form);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var photo = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(first.Length, photo.GetProperty("bytes").GetInt64());
        Assert.Equal(first, await cluster.StoredPhotoAsync(photo.GetProperty("id").GetInt64()));
    }

    [Fact]
    public async Task AnUploadCutOffHalfwayLeavesNothingOnTheNas()
    {
        var photos = Path.Combine(cluster.Nas, "photos");
        var before = Directory.GetFiles(photos).Length;
        var (half, resume) = (new TaskCompletionSource(), new TaskCompletionSource());
        var upload = http.PostAsync("/photos", new PausedMultipart(File.ReadAllBytes(Helpers.Sample("storm")), half, resume));
        await half.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(500);
        resume.SetException(new IOException("the camera lost its connection")); // the body ends halfway, the connection drops
        await Assert.ThrowsAnyAsync<Exception>(() => upload);

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Directory.GetFiles(photos).Length > before && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.Equal(before, Directory.GetFiles(photos).Length);
    }

    static long[] Ids(JsonElement page) => [.. page.EnumerateArray().Select(photo => photo.GetProperty("id").GetInt64())];

    /// <summary>A multipart upload whose body stops halfway until told to go on.</summary>
    sealed class PausedMultipart : HttpContent
    {
        const string Boundary = "paused-boundary";
        readonly byte[] photo;
        readonly TaskCompletionSource half, resume;

        public PausedMultipart(byte[] photo, TaskCompletionSource half, TaskCompletionSource resume)
        {
            (this.photo, this.half, this.resume) = (photo, half, resume);
            Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={Boundary}");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"--{Boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"storm.jpg\"\r\n" +
                "Content-Type: image/jpeg\r\n\r\n"));
            await stream.WriteAsync(photo.AsMemory(0, photo.Length / 2));
            await stream.FlushAsync();
            half.TrySetResult();
            await resume.Task;
            await stream.WriteAsync(photo.AsMemory(photo.Length / 2));
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"\r\n--{Boundary}--\r\n"));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
