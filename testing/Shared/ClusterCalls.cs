// Compiled into both the test project (testing/ImageProcessor.Tests) and the benchmark (bench/Bench.csproj): what both
// do to a running cluster, done one way, so that the benchmark measures the calls the tests check.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace ImageProcessor;

/// <summary>Starting a service, uploading a photo, posting an operations file, and waiting for the cluster.</summary>
public static class ClusterCalls
{
    /// <summary>Starts a service's program (its dll), its output appended to the log, with the settings given as its
    /// environment; PROJECT, the dll's name, tells the caller's processes apart.</summary>
    public static Process StartService(string dll, string log, params IEnumerable<(string Name, string Value)> settings)
    {
        var start = new ProcessStartInfo("bash", ["-c", $"exec dotnet {dll} >>{log} 2>&1"]);
        start.WorkingDirectory = Path.GetDirectoryName(log);
        start.Environment["PROJECT"] = Path.GetFileNameWithoutExtension(dll);
        foreach (var (name, value) in settings)
            start.Environment[name] = value;
        return Process.Start(start)!;
    }

    public static async Task<HttpResponseMessage> UploadAsync(this HttpClient http, byte[] bytes, string name,
        string? source = null)
    {
        using var form = new MultipartFormDataContent { { new ByteArrayContent(bytes), "file", name } };
        if (source is not null)
            form.Add(new StringContent(source), "source");
        return await http.PostAsync("/photos", form);
    }

    public static async Task<long> UploadedIdAsync(this HttpClient http, string path) =>
        await http.UploadedIdAsync(await File.ReadAllBytesAsync(path), Path.GetFileName(path));

    /// <summary>The id of the photo uploaded; an exception with the API's answer when it is not 201 Created.</summary>
    public static async Task<long> UploadedIdAsync(this HttpClient http, byte[] bytes, string name)
    {
        var response = await http.UploadAsync(bytes, name);
        if (response.StatusCode != HttpStatusCode.Created)
            throw new InvalidOperationException($"upload of {name}: {response.StatusCode} {await Body(response)}");
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    public static Task<HttpResponseMessage> PostOperationsAsync(this HttpClient http, long photo, string operations) =>
        http.PostAsync($"/photos/{photo}/operations",
            new StringContent(operations, MediaTypeHeaderValue.Parse("text/plain")));

    /// <summary>Posts the operations and gives back the conversion's Location; an exception with the API's answer when
    /// it is not 202 Accepted.</summary>
    public static async Task<string> PostConversionAsync(this HttpClient http, long photo, string operations)
    {
        var response = await http.PostOperationsAsync(photo, operations);
        if (response.StatusCode != HttpStatusCode.Accepted)
            throw new InvalidOperationException($"operations: {response.StatusCode} {await Body(response)}");
        return response.Headers.Location!.ToString();
    }

    /// <summary>Checks the condition every `every` until it holds; a request refused (a service not listening yet)
    /// counts as not yet. Throws with the failure given once `within` has passed or `hopeless` says so.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan within, TimeSpan every, string failure,
        Func<bool>? hopeless = null)
    {
        var clock = Stopwatch.StartNew();
        while (!await HoldsAsync(condition))
        {
            if (clock.Elapsed > within || hopeless?.Invoke() == true)
                throw new InvalidOperationException(failure);
            await Task.Delay(every);
        }
    }

    static Task<string> Body(HttpResponseMessage response) => response.Content.ReadAsStringAsync();

    static async Task<bool> HoldsAsync(Func<Task<bool>> condition)
    {
        try
        {
            return await condition();
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }
}
