/// <summary>The HTTP contract that cameras and operators rely on; README documents it.</summary>
public static class ImageApi
{
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

    static async Task<Results<Created<JsonElement?>, ProblemHttpResult>> Upload(HttpRequest request, NpgsqlConnection db)
    {
        var form = request.HasFormContentType ? await request.ReadFormAsync() : null;
        if (form?.Files["file"] is not { } file)
            return Problem(400, "send the photo as the multipart form field 'file'");
        var source = form["source"].FirstOrDefault();
        if (source is not null && !Operations.Name.IsMatch(source))
            return Problem(400, $"invalid source '{source}': 1 to 64 letters, digits, '-' or '_'");
        // Written under a temporary name on the NAS itself, so that the rename which publishes it is atomic; deleted when
        // closed unless that rename has published it by then, so that a refused upload leaves nothing behind.
        var name = $"{Guid.NewGuid():N}";
        var temp = Path.Combine(Env.Nas, "photos", name);
        await using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.Read, 0, FileOptions.DeleteOnClose);
        await file.CopyToAsync(stream); // unbuffered (0), so that ImageMagick reads it whole by its name
        var (width, height, format, _) = Magick.Ping(temp);
        if ((long)width * height > MaxPixels)
            return Problem(422, $"the photo has {width}x{height} pixels, more than the limit of {MaxPixels}");
        var path = $"photos/{name}.{format}";
        File.Move(temp, Path.Combine(Env.Nas, path));
        var id = await db.QuerySingleAsync<long>("""
            INSERT INTO photos (path, format, width, height, bytes, source)
            VALUES (@path, @format, @width, @height, @Length, @source) RETURNING id
            """, new { path, format, width, height, file.Length, source });
        return TypedResults.Created($"/photos/{id}", await Document(db, "photo", id));
    }

    static async Task<Results<Ok<JsonElement?>, ProblemHttpResult>> GetPhoto(long id, NpgsqlConnection db) =>
        await Document(db, "photo", id) is { } photo ? TypedResults.Ok<JsonElement?>(photo) : NotFound("photo", id);
    static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> GetOriginal(long id, NpgsqlConnection db) =>
        await db.QuerySingleOrDefaultAsync<string>("SELECT path FROM photos WHERE id = @id", new { id })
            is { } path ? NasFile(path) : NotFound("photo", id);

    // Only recorded here: the converter expands it, told by Postgres (the row is the outbox), so no broker is needed.
    static async Task<Results<Accepted<JsonElement?>, ProblemHttpResult>> PostOperations(long id, HttpRequest request, NpgsqlConnection db)
    {
        var body = request.HasFormContentType ? (await request.ReadFormAsync()).Files["file"]?.OpenReadStream() : request.Body;
        var text = await new StreamReader(body ?? Stream.Null).ReadToEndAsync();
        Operations.Parse(text); // a mistake throws OperationsException, which leaves as 400 naming its line
        var conversion = await db.QuerySingleOrDefaultAsync<long?>(
            "INSERT INTO conversions (photo_id, operations) SELECT id, @text FROM photos WHERE id = @id RETURNING id",
            new { id, text });
        return conversion is { } created
            ? TypedResults.Accepted($"/conversions/{created}", await Document(db, "conversion", created)) : NotFound("photo", id);
    }

    static async Task<Results<Ok<JsonElement?>, ProblemHttpResult>> GetConversion(long id, NpgsqlConnection db) =>
        await Document(db, "conversion", id) is { } conversion ? TypedResults.Ok<JsonElement?>(conversion) : NotFound("conversion", id);

    static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> GetOutput(long id, NpgsqlConnection db) =>
        await db.QuerySingleOrDefaultAsync<(string Status, string? Output)?>("SELECT status, output FROM jobs WHERE id = @id", new { id }) switch
        {
            null => NotFound("job", id),
            (_, { } path) => NasFile(path),
            var (status, _) => Problem(404, $"job {id} has no output: it is {status}"),
        };

    // Healthy when what the API itself needs answers: the database (unreachable, it throws: 503) and the NAS.
    static async Task<Results<Ok<string>, ProblemHttpResult>> Health(NpgsqlConnection db) =>
        await db.ExecuteScalarAsync<int>("SELECT 1") == 1 && Directory.Exists(Path.Combine(Env.Nas, "photos"))
            ? TypedResults.Ok("healthy") : Problem(503, $"the NAS is not mounted at {Path.GetFullPath(Env.Nas)}");

    // The JSON of a photo or a conversion is built by Postgres (db/schema.sql's views), so each has one definition.
    static async Task<JsonElement?> Document(NpgsqlConnection db, string what, long id) =>
        await db.QuerySingleOrDefaultAsync<string>($"SELECT document FROM {what}_documents WHERE id = @id", new { id })
            is { } json ? JsonSerializer.Deserialize<JsonElement>(json) : null;
    // Files on the NAS are named with their format as extension, which gives their Content-Type.
    static PhysicalFileHttpResult NasFile(string path) =>
        TypedResults.PhysicalFile(Path.GetFullPath(Path.Combine(Env.Nas, path)), $"image/{Path.GetExtension(path)[1..]}");

    static ProblemHttpResult NotFound(string what, long id) => Problem(404, $"no {what} {id}");
    static ProblemHttpResult Problem(int status, string detail) => TypedResults.Problem(detail, statusCode: status);
}
