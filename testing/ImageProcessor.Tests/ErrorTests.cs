using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace ImageProcessor.Tests;

/// <summary>Every refusal is RFC 9457 ProblemDetails with a detail precise enough to act on.</summary>
[Collection(nameof(Cluster))]
public sealed class ErrorTests(Cluster cluster)
{
    readonly HttpClient http = cluster.Http;

    [Fact]
    public async Task HealthAnswers200WhenTheDatabaseAndTheNasDo()
    {
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }

    // The NAS is shared: an API whose volume is not mounted (no photos folder, which the set-up makes once) must not take
    // photos onto its own disk and call itself healthy. A second API, started on an empty folder, shows it.
    [Fact]
    public async Task AnApiWithoutItsNasIsUnhealthyAndRefusesUploadsWith503()
    {
        var empty = Directory.CreateTempSubdirectory("unmounted-").FullName;
        var (api, client, health) = await Cluster.StartApiAsync(("NAS", empty));
        try
        {
            await health.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "the NAS is not mounted");
            await (await client.UploadAsync(Helpers.Sample("flower"))).AssertProblemAsync(HttpStatusCode.ServiceUnavailable,
                "the NAS is not mounted");
            Assert.Empty(Directory.GetFileSystemEntries(empty)); // nothing taken onto a disk that is not the NAS
        }
        finally
        {
            api.Kill(entireProcessTree: true);
            client.Dispose();
        }
    }

    [Fact]
    public async Task UnknownIdsAndRoutesAre404()
    {
        await (await http.GetAsync("/photos/987654321")).AssertProblemAsync(HttpStatusCode.NotFound, "no photo 987654321");
        await (await http.PostOperationsAsync(987654321, "flip")).AssertProblemAsync(HttpStatusCode.NotFound, "no photo 987654321");
        await (await http.GetAsync("/conversions/987654321")).AssertProblemAsync(HttpStatusCode.NotFound, "no conversion 987654321");
        await (await http.GetAsync("/jobs/987654321/output")).AssertProblemAsync(HttpStatusCode.NotFound, "no job 987654321");
        await (await http.GetAsync("/nothing")).AssertProblemAsync(HttpStatusCode.NotFound, "Not Found: /nothing");
    }

    [Fact]
    public async Task AnInvalidOperationsFileIs400NamingItsLineAndWord()
    {
        var photo = await http.UploadedIdAsync(Helpers.Sample("aqua"));

        await (await http.PostOperationsAsync(photo, "thumb: thumbnail 320x180\nrotat 90\n"))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "line 2: unknown operation 'rotat'");
        await (await http.PostOperationsAsync(photo, "# nothing\n"))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "line 1: no operations");
        await (await http.PostOperationsAsync(photo, "flip\n\nquality 101"))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "line 3: invalid argument '101' to 'quality' (a whole number from 1 to 100)");
        await (await http.PostOperationsAsync(photo, "flip # a NUL, \0, which no Postgres text holds"))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "the operations file holds a NUL character");
    }

    [Fact]
    public async Task AnUploadOverTheSizeLimitIs413BeforeItReachesTheDisk()
    {
        var response = await http.UploadAsync(new byte[Cluster.MaxUploadBytes + 1], "big.jpg");

        await response.AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge,
            $"Request body too large. The max request body size is {Cluster.MaxUploadBytes} bytes.");
    }

    [Fact]
    public async Task AnOperationsFileOver64KiBIs413()
    {
        var operations = await http.PostOperationsAsync(1, new string('#', 70_000));
        await operations.AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "Request body too large. The max request body size is 65536 bytes.");
    }

    [Fact]
    public async Task ABodyThatIsNotAnImageIs415()
    {
        var response = await http.UploadAsync("hello, camera\n"u8.ToArray(), "photo.jpg");

        // ImageMagick's reason, with the file named as the client knows it: no path on the server.
        await response.AssertProblemAsync(HttpStatusCode.UnsupportedMediaType,
            "no decode delegate for this image format `the photo' @ error/blob.c/CustomStreamToImage/833");
    }

    [Fact]
    public async Task AnImageOfAFormatOutsideTheLanguageIs415()
    {
        var path = Path.Combine(cluster.Scratch, "photo.bmp");
        Helpers.Run("convert", Helpers.Sample("flower"), "-resize", "64x64", path);

        await (await http.UploadAsync(path)).AssertProblemAsync(HttpStatusCode.UnsupportedMediaType,
            "attempt to perform an operation not authorized by the security policy `BMP' @ error/constitute.c/IsCoderAuthorized/456");
    }

    [Fact]
    public async Task AnImageOverThePixelLimitIs422()
    {
        var path = Path.Combine(cluster.Scratch, "wide.png");
        Helpers.Run("convert", "-size", "6000x4000", "xc:gray", path);

        await (await http.UploadAsync(path)).AssertProblemAsync((HttpStatusCode)422,
            $"the photo has 6000x4000 pixels, more than the limit of {Cluster.MaxPixels}");
    }

    [Fact]
    public async Task AnUploadWithoutAFileOrWithABadSourceIs400()
    {
        await (await http.PostAsync("/photos", new StringContent("x", MediaTypeHeaderValue.Parse("image/jpeg"))))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "send the photo as the multipart form field 'file'");
        using var noFile = new MultipartFormDataContent { { new StringContent("cam-1"), "source" } };
        await (await http.PostAsync("/photos", noFile))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "send the photo as the multipart form field 'file'");
    }
}
