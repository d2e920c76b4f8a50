/// <summary>The HTTP contract that cameras and operators rely on; README documents it.</summary>
public static class ImageApi
{
    static readonly long MaxUploadBytes = long.Parse(Env.Get("MAX_UPLOAD_BYTES", "25000000"));
    static readonly long MaxPixels = long.Parse(Env.Get("MAX_PIXELS", "50000000"));

    public static void MapImageApi(this IEndpointRouteBuilder app)
    {
        // Kestrel refuses bodies past these sizes with 413 as they arrive, before they reach the disk.
        app.MapPost("/photos", Upload).WithMetadata(new RequestSizeLimitAttribute(MaxUploadBytes));
        app.MapGet("/photos", ListPhotos);
        app.MapGet("/photos/{id:long}", GetPhoto);
        app.MapGet("/photos/{id:long}/original", GetOriginal);
        app.MapPost("/photos/{id:long}/operations", PostOperations).WithMetadata(new RequestSizeLimitAttribute(64 << 10));
        app.MapGet("/conversions/{id:long}", GetConversion);
        app.MapGet("/jobs/{id:long}/output", GetOutput);
        app.MapGet("/stats", GetStats);
        app.MapGet("/healthz", Health);
    }

    // Streamed onto the NAS as it arrives (ASP.NET's form reader would first copy it elsewhere), unbuffered so that ImageMagick
    // reads it whole by its name; under a temporary name that is deleted on close unless the atomic rename has published it.
    static async Task<Created<JsonElement>> Upload(HttpRequest request, NpgsqlConnection db)
    {
        var boundary = MediaTypeHeaderValue.TryParse(request.ContentType, out var type) ? HeaderUtilities.RemoveQuotes(type.Boundary).Value : null;
        var (parts, source) = (boundary?.Length <= 70 ? new MultipartReader(boundary, request.Body) : null, (string?)null);
        await using var photo = new FileStream(Path.Combine(Env.Nas, "photos", $"{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.Write,
            FileShare.Read, bufferSize: 0, FileOptions.DeleteOnClose);
        while (parts is not null && await parts.ReadNextSectionAsync() is { } part)
            if (part.AsFileSection() is { Name: "file" } file && photo.Length == 0) // the first file sent, alone
                await file.FileStream!.CopyToAsync(photo);
            else if (part.AsFormDataSection() is { Name: "source" } field)
                source = await field.GetValueAsync();
        if (photo.Length == 0)
            throw Refused(400, "send the photo as the multipart form field 'file'");
        if (source is not null && !Operations.Name.IsMatch(source))
            throw Refused(400, $"invalid source '{source}': 1 to 64 letters, digits, '-' or '_'");
        var header = Magick.Ping(photo.Name);
        if ((long)header.Width * header.Height > MaxPixels)
            throw Refused(422, $"the photo has {header.Width}x{header.Height} pixels, more than the limit of {MaxPixels}");
        var path = $"photos/{Path.GetFileName(photo.Name)}.{header.Format}";
        File.Move(photo.Name, Path.Combine(Env.Nas, path));
        var id = await db.QuerySingleAsync<long>("""
            INSERT INTO photos (path, format, width, height, bytes, source, captured, camera)
            VALUES (@path, @Format, @Width, @Height, @Length, @source, @Captured, @Camera) RETURNING id
            """, new { path, header.Format, header.Width, header.Height, photo.Length, source, header.Captured, header.Camera });
        return TypedResults.Created($"/photos/{id}", await Document(db, "photo", id));
    }

    // Newest first, a page at a time: the next page is the one before the id of this page's last photo.
    static async Task<Ok<JsonElement?>> ListPhotos(NpgsqlConnection db, string? source, DateTimeOffset? since, long? before, int limit = 100) =>
        limit is < 1 or > 1000 ? throw Refused(400, $"invalid limit {limit}: from 1 to 1000") : TypedResults.Ok(await Json(db, """
            SELECT coalesce(json_agg(document ORDER BY id DESC), '[]') FROM (SELECT id, document FROM photo_documents
                WHERE (@source::text IS NULL OR source = @source) AND (@since::timestamptz IS NULL OR created >= @since)
                AND (@before::bigint IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit) AS page
            """, new { source, since = since?.ToUniversalTime(), before, limit }));

    static async Task<Ok<JsonElement>> GetPhoto(long id, NpgsqlConnection db) => TypedResults.Ok(await Document(db, "photo", id));
    static async Task<PhysicalFileHttpResult> GetOriginal(long id, NpgsqlConnection db) =>
        NasFile(await db.ExecuteScalarAsync<string>("SELECT path FROM photos WHERE id = @id", new { id }) ?? throw Refused(404, $"no photo {id}"));

    // Only recorded here: the converter expands it, told by Postgres (the row is the outbox), so no broker is needed.
    static async Task<Accepted<JsonElement>> PostOperations(long id, HttpRequest request, NpgsqlConnection db)
    {
        var body = request.HasFormContentType ? (await request.ReadFormAsync()).Files["file"]?.OpenReadStream() : request.Body;
        var text = await new StreamReader(body ?? Stream.Null).ReadToEndAsync();
        Operations.Parse(text); // a mistake throws OperationsException, which leaves as 400 naming its line
        var conversion = await db.QuerySingleOrDefaultAsync<long?>(
            "INSERT INTO conversions (photo_id, operations) SELECT id, @text FROM photos WHERE id = @id RETURNING id",
            new { id, text }) ?? throw Refused(404, $"no photo {id}");
        return TypedResults.Accepted($"/conversions/{conversion}", await Document(db, "conversion", conversion));
    }

    static async Task<Ok<JsonElement>> GetConversion(long id, NpgsqlConnection db) => TypedResults.Ok(await Document(db, "conversion", id));

    static async Task<PhysicalFileHttpResult> GetOutput(long id, NpgsqlConnection db) => await db.QuerySingleOrDefaultAsync<(string Status,
        string? Output)?>("SELECT status, output FROM jobs WHERE id = @id", new { id }) is var (status, output)
        ? NasFile(output ?? throw Refused(404, $"job {id} has no output: it is {status}")) : throw Refused(404, $"no job {id}");

    // Healthy when what the API needs answers: the database (unreachable, it throws: 503) and the NAS, whose photos
    // folder the set-up makes once (run.sh, compose's nas service): never the API, so an unmounted volume shows.
    static async Task<Ok<string>> Health(NpgsqlConnection db) =>
        await db.ExecuteScalarAsync<int>("SELECT 1") == 1 && Directory.Exists(Path.Combine(Env.Nas, "photos"))
            ? TypedResults.Ok("healthy") : throw Refused(503, $"the NAS is not mounted at {Path.GetFullPath(Env.Nas)}");

    // Every JSON document is built by Postgres (db/schema.sql's views), so each has one definition: a photo's, a conversion's,
    // and the status page's stats. An unknown id throws its 404.
    static async Task<Ok<JsonElement?>> GetStats(NpgsqlConnection db) => TypedResults.Ok(await Json(db, "SELECT document FROM stats"));
    static async Task<JsonElement> Document(NpgsqlConnection db, string what, long id) =>
        await Json(db, $"SELECT document FROM {what}_documents WHERE id = @id", new { id }) ?? throw Refused(404, $"no {what} {id}");
    static async Task<JsonElement?> Json(NpgsqlConnection db, string sql, object? parameters = null) =>
        await db.QuerySingleOrDefaultAsync<string>(sql, parameters) is { } json ? JsonSerializer.Deserialize<JsonElement>(json) : null;
    // Files on the NAS are named with their format as extension, which gives their Content-Type.
    static PhysicalFileHttpResult NasFile(string path) =>
        TypedResults.PhysicalFile(Path.GetFullPath(Path.Combine(Env.Nas, path)), $"image/{Path.GetExtension(path)[1..]}");

    // Every error leaves as ProblemDetails with this detail, by way of the exception handler (Program.cs).
    static BadHttpRequestException Refused(int status, string detail) => new(detail, status);
}
