using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace ImageProcessor.Tests;

/// <summary>How an upload reaches the NAS: as it arrives, once.</summary>
[Collection(nameof(Cluster))]
public sealed class PhotoTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;

    [Fact]
    public async Task AnUploadIsWrittenOntoTheNasAsItArrivesNotBufferedFirst()
    {
        var photo = File.ReadAllBytes(Helpers.Sample("storm")); // 678 KiB
        var half = new TaskCompletionSource();
        var resume = new TaskCompletionSource();
        var upload = http.PostAsync("/photos", new PausedMultipart(photo, half, resume).Typed());

        // Half the body sent, the rest held back: the photo is already on the NAS, under its temporary name.
        await half.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var photos = Path.Combine(cluster.Nas, "photos");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!Directory.GetFiles(photos).Any(file => Path.GetExtension(file) == "" && new FileInfo(file).Length > photo.Length / 4)
            && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        var partial = Directory.GetFiles(photos).Where(file => Path.GetExtension(file) == "").ToArray();
        Assert.Contains(partial, file => new FileInfo(file).Length > photo.Length / 4);
        resume.SetResult();

        var response = await upload;
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.All(partial, file => Assert.False(File.Exists(file), $"{file} is left behind")); // renamed to its format's name
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        Assert.Equal(photo, await http.GetByteArrayAsync($"/photos/{id}/original"));
    }

    [Fact]
    public async Task AnUploadCutOffHalfwayLeavesNothingOnTheNas()
    {
        var photos = Path.Combine(cluster.Nas, "photos");
        var before = Directory.GetFiles(photos).Length;
        var (half, resume) = (new TaskCompletionSource(), new TaskCompletionSource());
        var upload = http.PostAsync("/photos", new PausedMultipart(File.ReadAllBytes(Helpers.Sample("storm")), half, resume).Typed());
        await half.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(500);
        resume.SetException(new IOException("the camera lost its connection")); // the body ends halfway, the connection drops
        await Assert.ThrowsAnyAsync<Exception>(() => upload);

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Directory.GetFiles(photos).Length > before && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.Equal(before, Directory.GetFiles(photos).Length);
    }

    /// <summary>A multipart upload whose body stops halfway until told to go on.</summary>
    sealed class PausedMultipart(byte[] photo, TaskCompletionSource half, TaskCompletionSource resume) : HttpContent
    {
        const string Boundary = "paused-boundary";

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

        public PausedMultipart Typed()
        {
            Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={Boundary}");
            return this;
        }
    }
}
