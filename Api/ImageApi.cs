using Dapper;
using ImageProcessor;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Npgsql;

/// <summary>The HTTP contract that cameras and operators rely on; README documents it.</summary>
public static class ImageApi
{
    const string PhotoColumns = "id, width, height, format, bytes, source";
    static readonly long MaxUploadBytes = long.Parse(Env.Get("MAX_UPLOAD_BYTES", "25000000"));
    static readonly long MaxPixels = long.Parse(Env.Get("MAX_PIXELS", "50000000"));

    public static void MapImageApi(this IEndpointRouteBuilder app)
    {
        // Kestrel refuses bodies past these sizes with 413 as they arrive, before they reach the disk.
        app.MapPost("/photos", Upload).WithMetadata(new RequestSizeLimitAttribute(MaxUploadBytes));
        app.MapGet("/photos/{id:long}", GetPhoto);
        app.MapGet("/photos/{id:long}/original", GetOriginal);
        app.MapPost("/photos/{id:long}/operations", PostOperations).WithMetadata(new RequestSizeLimitAttribute(64 << 10));
        app.MapGet("/conversions/{id:long}", GetConversion);
        app.MapGet("/jobs/{id:long}/output", GetOutput);
        app.MapGet("/healthz", Health);
    }

    static async Task<Results<Created<Photo>, ProblemHttpResult>> Upload(HttpRequest request, NpgsqlConnection db)
    {
        var form = request.HasFormContentType ? await request.ReadFormAsync() : null;
        if (form?.Files["file"] is not { } file)
            return Problem(400, "send the photo as the multipart form field 'file'");
        var source = form["source"].FirstOrDefault();
        if (source is not null && !Operations.Name.IsMatch(source))
            return Problem(400, $"invalid source '{source}': 1 to 64 letters, digits, '-' or '_'");
        // Written under a temporary name on the NAS itself, so that the rename which publishes it is atomic.
        var name = $"{Guid.NewGuid():N}";
        var temp = Path.Combine(Env.Nas, "photos", name);
        try
        {
            await using (var stream = File.Create(temp))
                await file.CopyToAsync(stream);
            var (width, height, format, _) = Magick.Ping(temp);
            if ((long)width * height > MaxPixels)
                return Problem(422, $"the photo has {width}x{height} pixels, more than the limit of {MaxPixels}");
            var path = $"photos/{name}.{format}";
            File.Move(temp, Path.Combine(Env.Nas, path));
            var photo = await db.QuerySingleAsync<Photo>($"""
                INSERT INTO photos (path, format, width, height, bytes, source)
                VALUES (@path, @format, @width, @height, @Length, @source) RETURNING {PhotoColumns}
                """, new { path, format, width, height, file.Length, source });
            return TypedResults.Created($"/photos/{photo.Id}", photo);
        }
        finally
        {
            File.Delete(temp); // nothing left to delete once published
        }
    }

    static async Task<Results<Ok<Photo>, ProblemHttpResult>> GetPhoto(long id, NpgsqlConnection db) =>
        await db.QuerySingleOrDefaultAsync<Photo>($"SELECT {PhotoColumns} FROM photos WHERE id = @id", new { id })
            is { } photo ? TypedResults.Ok(photo) : NotFound("photo", id);

    static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> GetOriginal(long id, NpgsqlConnection db) =>
        await db.QuerySingleOrDefaultAsync<string>("SELECT path FROM photos WHERE id = @id", new { id })
            is { } path ? NasFile(path) : NotFound("photo", id);

    static async Task<Results<Accepted<Conversion>, ProblemHttpResult>> PostOperations(
        long id, HttpRequest request, NpgsqlConnection db, Bus bus)
    {
        var body = request.HasFormContentType ? (await request.ReadFormAsync()).Files["file"]?.OpenReadStream() : request.Body;
        var text = await new StreamReader(body ?? Stream.Null).ReadToEndAsync();
        Operations.Parse(text); // a mistake throws OperationsException, which leaves as 400 naming its line
        var conversion = await db.QuerySingleOrDefaultAsync<long?>(
            "INSERT INTO conversions (photo_id, operations) SELECT id, @text FROM photos WHERE id = @id RETURNING id",
            new { id, text });
        if (conversion is not { } created)
            return NotFound("photo", id);
        await bus.PublishAsync("conversions", new Message(created));
        return TypedResults.Accepted($"/conversions/{created}", new Conversion(created, id, "pending", []));
    }

    static async Task<Results<Ok<Conversion>, ProblemHttpResult>> GetConversion(long id, NpgsqlConnection db)
    {
        var photoId = await db.QuerySingleOrDefaultAsync<long?>("SELECT photo_id FROM conversions WHERE id = @id", new { id });
        if (photoId is null)
            return NotFound("conversion", id);
        var jobs = (await db.QueryAsync<Job>("""
            SELECT id, name, status, error, CASE WHEN status = 'done' THEN '/jobs/' || id || '/output' END AS output
            FROM jobs WHERE conversion_id = @id ORDER BY id
            """, new { id })).ToList();
        // Pending until the converter has made the jobs, running while any is unfinished, then failed if any failed.
        var status = jobs.Count == 0 ? "pending"
            : jobs.Any(job => job.Status is "queued" or "running") ? "running"
            : jobs.Any(job => job.Status == "failed") ? "failed" : "done";
        return TypedResults.Ok(new Conversion(id, photoId.Value, status, jobs));
    }

    static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> GetOutput(long id, NpgsqlConnection db) =>
        await db.QuerySingleOrDefaultAsync<(string Status, string? Output)?>("SELECT status, output FROM jobs WHERE id = @id", new { id }) switch
        {
            null => NotFound("job", id),
            (_, { } path) => NasFile(path),
            var (status, _) => Problem(404, $"job {id} has no output: it is {status}"),
        };

    // Healthy when the database answers and the bus is open. An unreachable database throws, which leaves as 503.
    static async Task<Results<Ok<string>, ProblemHttpResult>> Health(NpgsqlConnection db, Bus bus) =>
        await db.ExecuteScalarAsync<int>("SELECT 1") == 1 && bus.IsOpen
            ? TypedResults.Ok("healthy") : Problem(503, "the message bus is unreachable");

    // Files on the NAS are named with their format as extension, which gives their Content-Type.
    static PhysicalFileHttpResult NasFile(string path) =>
        TypedResults.PhysicalFile(Path.GetFullPath(Path.Combine(Env.Nas, path)), $"image/{Path.GetExtension(path)[1..]}");

    static ProblemHttpResult NotFound(string what, long id) => Problem(404, $"no {what} {id}");

    static ProblemHttpResult Problem(int status, string detail) => TypedResults.Problem(detail, statusCode: status);
}

public sealed record Photo(long Id, int Width, int Height, string Format, long Bytes, string? Source);
public sealed record Conversion(long Id, long PhotoId, string Status, List<Job> Jobs);
public sealed record Job(long Id, string Name, string Status, string? Error, string? Output);
