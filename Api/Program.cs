// Rooted in the program's folder, wherever it is started from: its settings and the status page (wwwroot) are there.
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.WebHost.UseUrls(builder.Configuration["urls"] ?? "http://localhost:8080");

// Database: one pool for the process, one connection per request, opened by Dapper only while a query runs.
builder.Services.AddSingleton(NpgsqlDataSource.Create(Env.Database));
builder.Services.AddScoped(services => services.GetRequiredService<NpgsqlDataSource>().CreateConnection());

// Errors: every one leaves as RFC 9457 ProblemDetails; one that is not our fault carries its message as the detail.
builder.Services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
    context.ProblemDetails.Detail ??= context.Exception is { } e && StatusOf(e) != 500 ? e.Message
        : $"{context.ProblemDetails.Title}: {context.HttpContext.Request.Method} {context.HttpContext.Request.Path}");
builder.Services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = true); // a bad parameter, named

var app = builder.Build();
// The client's mistake is not our error: only a 5xx is logged as one.
app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = StatusOf,
    SuppressDiagnosticsCallback = context => StatusOf(context.Exception) < 500 });
app.UseStatusCodePages();

// Access: API_KEY, when set, guards all but /healthz and the status page's files, which hold no data (README).
app.UseFileServer();
var apiKey = Env.Get("API_KEY", "");
app.Use((context, next) =>
    apiKey != "" && context.Request.Path != "/healthz" && context.Request.Headers.Authorization != $"Bearer {apiKey}"
        ? throw new BadHttpRequestException("send the API key as the header 'Authorization: Bearer <key>'", 401) : next(context));
app.MapImageApi();
app.Run();

static int StatusOf(Exception exception) => exception switch
{
    BadHttpRequestException bad => bad.StatusCode,
    OperationsException or InvalidDataException or IOException { Source: "Microsoft.AspNetCore.WebUtilities" } => 400, // a broken form
    MagickException => 415,
    NpgsqlException or DirectoryNotFoundException => 503, // Postgres away, or the NAS (its photos folder) not mounted
    _ => 500,
};
