using ImageProcessor;
using Npgsql;
using RabbitMQ.Client.Exceptions;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
builder.WebHost.UseUrls(builder.Configuration["urls"] ?? "http://localhost:8080");

// Database
builder.Services.AddSingleton(NpgsqlDataSource.Create(Env.Database));
builder.Services.AddScoped(services => services.GetRequiredService<NpgsqlDataSource>().CreateConnection());

// Bus
builder.Services.AddSingleton(await Bus.ConnectAsync());

// Errors: every failure leaves as RFC 9457 ProblemDetails; an expected one carries its own message as the detail.
builder.Services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
{
    if (context.Exception is { } e && context.ProblemDetails.Status != 500)
        context.ProblemDetails.Detail = e is NpgsqlException or RabbitMQClientException ? $"unavailable: {e.Message}" : e.Message;
    context.ProblemDetails.Detail ??= $"{context.ProblemDetails.Title}: {context.HttpContext.Request.Method} {context.HttpContext.Request.Path}";
});

var app = builder.Build();
app.UseExceptionHandler(new ExceptionHandlerOptions
{
    StatusCodeSelector = e => e switch
    {
        BadHttpRequestException bad => bad.StatusCode,
        OperationsException or InvalidDataException => 400,
        MagickException => 415,
        NpgsqlException or RabbitMQClientException => 503,
        _ => 500,
    },
});
app.UseStatusCodePages();

foreach (var folder in new[] { "photos", "tmp" })
    Directory.CreateDirectory(Path.Combine(Env.Nas, folder));
app.MapImageApi();
app.Run();
