namespace ImageProcessor.Benchmark;

// The shared helpers: child processes, waiting, and what /proc says of CPU time, context switches and memory.
sealed partial class Bench
{
    static async Task<string> RunAsync(string program, string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? stderr : throw new InvalidOperationException($"{program} {string.Join(' ', arguments)}: {stderr}");
    }

    static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddMinutes(10);
        while (!await Try(condition))
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("the cluster did not get there in 10 minutes");
            await Task.Delay(10);
        }

        static async Task<bool> Try(Func<Task<bool>> condition)
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

    // CPU time a process (user and system) or the whole machine (all but idle) has used, in clock ticks of 10 ms.
    static long CpuTicks(int pid) => File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ') is var f ? long.Parse(f[12]) + long.Parse(f[13]) : 0;

    static long? TryCpuTicks(int pid)
    {
        try
        {
            return CpuTicks(pid);
        }
        catch (IOException)
        {
            return null; // ended
        }
    }

    // The processes of a server that bench.sh started: those whose command line names its folder, and their descendants.
    static List<int> ServerPids(string folder)
    {
        var processes = new List<(int Pid, int Parent, string Command)>();
        foreach (var pid in Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(name => name!.All(char.IsAsciiDigit)).Select(int.Parse!))
            try
            {
                var parent = int.Parse(File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].Split(' ')[2]);
                processes.Add((pid, parent, File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ')));
            }
            catch (IOException)
            {
            }
        var found = processes.Where(p => p.Command.Contains(folder)).Select(p => p.Pid).ToHashSet();
        while (processes.Where(p => found.Contains(p.Parent) && !found.Contains(p.Pid)).Select(p => p.Pid).ToList() is { Count: > 0 } children)
            found.UnionWith(children);
        return [.. found];
    }

    // Context switches of all the threads of a process, voluntary and not.
    static long Switches(int pid) => Directory.GetDirectories($"/proc/{pid}/task").Sum(task =>
    {
        try
        {
            return File.ReadLines($"{task}/status").Where(line => line.Contains("ctxt_switches:")).Sum(line => long.Parse(line.Split(':')[1]));
        }
        catch (IOException)
        {
            return 0;
        }
    });

    static long MachineTicks() => File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..]
        .Select(long.Parse).Where((_, i) => i != 3 && i != 4).Sum(); // all but idle and iowait

    // Peak resident memory (VmHWM) of a running process, in KiB.
    static long PeakKb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").Single(line => line.StartsWith("VmHWM:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    static void Log(string message) => Console.Error.WriteLine($"bench: {message}");

    static double Percentile(double[] values, double p) => values.Order().ElementAt((int)Math.Ceiling(p * values.Length) - 1);
}

// CpuSeconds: what the process used over the timed part (engine and peer; the cluster's is measured from /proc).
sealed record Result(double Seconds, double[] Ms, long PeakKb, double CpuSeconds = 0)
{
    public double Rate => Ms.Length / Seconds;
}
