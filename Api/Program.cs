// Rooted in the program's folder, wherever it is started from: its settings and the status page (wwwroot) are there.
var options = new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory };
var builder = WebApplication.CreateSlimBuilder(options);
builder.WebHost.UseUrls(builder.Configuration["urls"] ?? "http://localhost:8080");
var maxUploadBytes = long.Parse(Env.Get("MAX_UPLOAD_BYTES", "25000000"));
var maxPixels = long.Parse(Env.Get("MAX_PIXELS", "50000000"));
builder.Services.AddNpgsqlDataSource(Env.Database(pool: 40)); // a connection per request, open while a query runs
// Errors: each leaves as RFC 9457 ProblemDetails, its detail Problem's (below), or else the request that failed.
builder.Services.AddProblemDetails(options => options.CustomizeProblemDetails = context => context.ProblemDetails.Detail
    ??= Problem(context.Exception).Detail ?? $"{context.ProblemDetails.Title}: {context.HttpContext.Request.Path}");
builder.Services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = true); // a bad parameter, named

var app = builder.Build();
app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = e => Problem(e).Status,
    SuppressDiagnosticsCallback = context => Problem(context.Exception).Status < 500 }); // a client's mistake: no log
app.UseStatusCodePages();
// Access: API_KEY, when set, guards all but /healthz and the status page's files, which hold no data (README).
app.UseFileServer();
var apiKey = Env.Get("API_KEY", "");
app.Use((context, next) => apiKey == "" || context.Request.Path == "/healthz" || IsKey(context.Request, apiKey)
    ? next(context) : throw Refused(401, "send the API key as the header 'Authorization: Bearer <key>'"));

// The HTTP contract of README. Kestrel refuses a body past its route's limit with 413, as it arrives.
app.MapPost("/photos", Upload).WithMetadata(new RequestSizeLimitAttribute(maxUploadBytes));
app.MapGet("/photos", ListPhotos);
app.MapGet("/photos/{id:long}", (long id, NpgsqlConnection db) => Document(db, "photo", id));
app.MapPost("/photos/{id:long}/operations", PostOperations).WithMetadata(new RequestSizeLimitAttribute(64 << 10));
app.MapGet("/conversions/{id:long}", (long id, NpgsqlConnection db) => Document(db, "conversion", id));
app.MapGet("/jobs/{id:long}/output", GetOutput);
app.MapGet("/stats", (NpgsqlConnection db) => Json(db, "SELECT document FROM stats"));
app.MapGet("/healthz", Health);
app.Run();

// ASP.NET reads the form; a photo that passes is copied to the NAS as a file deleted on close unless renamed first.
async Task<Created<JsonElement>> Upload(HttpRequest request, NpgsqlConnection db)
{
    var form = request.HasFormContentType ? await request.ReadFormAsync() : null; // its errors leave as Problem's
    var file = form?.Files["file"]; // the first file sent by that name, alone
    var source = form?["source"].FirstOrDefault();
    if (file is not { Length: > 0 })
        throw Refused(400, "send the photo as the multipart form field 'file'");
    if (source is not null && !Operations.Name.IsMatch(source))
        throw Refused(400, $"invalid source '{source}': 1 to 64 letters, digits, '-' or '_'");
    var header = Magick.Ping(file.OpenReadStream());
    if ((long)header.Width * header.Height > maxPixels)
        throw Refused(422, $"the photo has {header.Width}x{header.Height} pixels, more than the limit of {maxPixels}");
    var format = header.Format.ToString().ToLowerInvariant();
    await using var photo = new FileStream(Path.Combine(Env.Nas, "photos", $"{Guid.NewGuid():N}"), FileMode.CreateNew,
        FileAccess.Write, FileShare.None, bufferSize: 0, FileOptions.DeleteOnClose);
    await file.CopyToAsync(photo);
    var path = $"photos/{Path.GetFileName(photo.Name)}.{format}";
    // Row and file are published together: 201 exactly when the row is committed, and never a row without its file.
    await db.OpenAsync();
    await using var transaction = await db.BeginTransactionAsync();
    var document = await Json(db, """
        INSERT INTO photos (path, format, width, height, bytes, source)
        VALUES (@path, @format, @width, @height, @bytes, @source) RETURNING photo_document(photos)
        """, new { path, format, width = (int)header.Width, height = (int)header.Height, bytes = file.Length, source });
    File.Move(photo.Name, Path.Combine(Env.Nas, path));
    await transaction.CommitAsync();
    return TypedResults.Created($"/photos/{document!.Value.GetProperty("id")}", document.Value);
}

async Task<JsonElement?> ListPhotos(NpgsqlConnection db, string? source, DateTimeOffset? since, int limit = 100)
{
    if (limit is < 1 or > 1000)
        throw Refused(400, $"invalid limit {limit}: from 1 to 1000");
    return await Json(db, """
        SELECT coalesce(json_agg(document ORDER BY id DESC), '[]') FROM (SELECT id, document FROM photo_documents
            WHERE (@source::text IS NULL OR source = @source) AND (@since::timestamptz IS NULL OR created >= @since)
            ORDER BY id DESC LIMIT @limit) AS page
        """, new { source, since = since?.ToUniversalTime(), limit });
}

// Only recorded here: the converter expands it, told by Postgres (the row is the outbox), so no broker is needed.
async Task<Accepted<JsonElement>> PostOperations(long id, HttpRequest request, NpgsqlConnection db)
{
    var form = request.HasFormContentType ? await request.ReadFormAsync() : null; // the file as a form's field, or raw
    var text = await new StreamReader(form?.Files["file"]?.OpenReadStream() ?? request.Body).ReadToEndAsync();
    Operations.Parse(text); // a mistake throws OperationsException, which leaves as 400 naming its line
    var conversion = await Json(db, """
        INSERT INTO conversions (photo_id, operations) SELECT id, @text FROM photos WHERE id = @id
        RETURNING conversion_document(conversions)
        """, new { id, text }) ?? throw Refused(404, $"no photo {id}");
    return TypedResults.Accepted($"/conversions/{conversion.GetProperty("id")}", conversion);
}

// Files on the NAS are named with their format as extension, which gives their Content-Type.
async Task<PhysicalFileHttpResult> GetOutput(long id, NpgsqlConnection db)
{
    var job = await db.QuerySingleOrDefaultAsync<(string Status, string? Output)?>(
        "SELECT status, output FROM jobs WHERE id = @id", new { id }) ?? throw Refused(404, $"no job {id}");
    var output = job.Output ?? throw Refused(404, $"job {id} has no output: it is {job.Status}");
    return TypedResults.PhysicalFile(Path.GetFullPath(Path.Combine(Env.Nas, output)), $"image/{output.Split('.')[^1]}");
}

// Healthy when the database answers and the NAS is mounted: its photos folder, which the set-up makes (README), exists.
async Task<string> Health(NpgsqlConnection db) => await db.ExecuteScalarAsync<int>("SELECT 1") == 1
    && Directory.Exists(Path.Combine(Env.Nas, "photos")) ? "healthy" : throw Refused(503, "the NAS is not mounted");

// Every JSON document is built by Postgres (db/schema.sql), so each has one definition.
async Task<JsonElement> Document(NpgsqlConnection db, string what, long id) =>
    await Json(db, $"SELECT document FROM {what}_documents WHERE id = @id", new { id })
        ?? throw Refused(404, $"no {what} {id}");
async Task<JsonElement?> Json(NpgsqlConnection db, string sql, object? parameters = null) => // no row: JSON's null
    JsonSerializer.Deserialize<JsonElement?>(await db.QuerySingleOrDefaultAsync<string>(sql, parameters) ?? "null");
static bool IsKey(HttpRequest request, string key) => CryptographicOperations.FixedTimeEquals( // in constant time
    Encoding.UTF8.GetBytes($"{request.Headers.Authorization}"), Encoding.UTF8.GetBytes($"Bearer {key}"));
static BadHttpRequestException Refused(int status, string detail) => new(detail, status); // to Problem, below

// An exception's status, and the detail a client reads: never a path on the server, and for a 500 only the request.
static (int Status, string? Detail) Problem(Exception? exception) => exception switch
{
    BadHttpRequestException e => (e.StatusCode, e.Message),
    OperationsException or InvalidDataException => (400, exception.Message), // a mistake, or a broken form
    IOException { Source: "Microsoft.AspNetCore.WebUtilities" } e => (400, e.Message), // a form cut short
    MagickException e => (415, e.Message.Replace("`'", "`the photo'")), // ImageMagick quotes a stream's name as `'
    IOException e when Env.IsNasFull(e) => (507, "the NAS is full"),
    DirectoryNotFoundException => (503, "the NAS is not mounted"), // its photos folder is missing
    PostgresException { SqlState: "22021" } => (400, "the operations file holds a NUL character"),
    NpgsqlException { IsTransient: true } e => (503, e.Message), // Postgres away, or no connection free in time
    _ => (500, null),
};
