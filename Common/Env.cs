namespace ImageProcessor;

/// <summary>Settings come from environment variables, so one build runs locally, under compose and in tests.</summary>
public static class Env
{
    public static string Database(int pool) => // a service's pool size (README), unless DATABASE sets one
        $"Maximum Pool Size={pool};{Get("DATABASE", "Host=127.0.0.1;Username=imageprocessor;Password=imageprocessor")}";
    public static string Bus => Get("BUS", "amqp://guest:guest@127.0.0.1:5672");
    public static string Nas => Get("NAS", "nas");
    public static string Get(string name, string fallback) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } set ? set : fallback;
    public static bool IsNasFull(Exception e) => e is IOException { HResult: 28 or 122 }; // ENOSPC, EDQUOT: no room
}
