namespace ImageProcessor;

/// <summary>Settings come from environment variables, so one build runs locally, under compose and in tests.</summary>
public static class Env
{
    public static string Database => Get("DATABASE", "Host=127.0.0.1;Username=imageprocessor;Password=imageprocessor;Timeout=5");
    public static string Bus => Get("BUS", "amqp://guest:guest@127.0.0.1:5672");
    public static string Nas => Get("NAS", "nas");
    public static string Get(string name, string fallback) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } set ? set : fallback;
}
