namespace ImageProcessor;

/// <summary>ImageMagick 6 (Q16, as Debian ships it), bound directly since our package source has no Magick.NET, and
/// driven in process through its own command layer: each step becomes the `convert` option of that name, so it means
/// exactly what it means to ImageMagick. A failure carries ImageMagick's own reason: Ping throws it, Convert returns it.</summary>
public static class Magick
{
    const string Wand = "libMagickWand-6.Q16.so.6", Core = "libMagickCore-6.Q16.so.6";
    const int ReasonOffset = 8; // MagickCore's ExceptionInfo (magick/exception.h) begins: int severity, error_number; char *reason
    static readonly int TimeLimit = int.Parse(Env.Get("JOB_SECONDS", "60"));
    // ImageMagick asks the progress monitor as it goes, and stops when told; the deadline comes as the client data.
    static readonly ProgressMonitor BeforeDeadline = (_, _, _, deadline) => Environment.TickCount64 < deadline;
    delegate bool ProgressMonitor(nint text, long offset, ulong span, nint deadline);

    static Magick()
    {
        // Our policy.xml, beside the program, refuses every coder but the five formats, all delegates and @file
        // indirection, caps memory, size and frames, and allows one thread. .NET keeps its own signal handlers.
        setenv("MAGICK_CONFIGURE_PATH", AppContext.BaseDirectory, overwrite: 1);
        MagickCoreGenesis(null, establishSignalHandlers: false);
    }

    /// <summary>Reads only the header of the first frame, without its pixels; Captured and Camera come from its EXIF.</summary>
    public static Header Ping(string path) => Run(["-ping", $"{path}[0]", "null:"]);

    /// <summary>Applies the steps to the first frame of input, whose format is named so that its content cannot choose
    /// another coder, and writes output atomically: whole or not at all. Returns the output's size, or why it failed.</summary>
    public static (int? Width, int? Height, string? Error) Convert(string input, string inputFormat, Step[] steps, string output, string format)
    {
        var temp = $"{output}.{Guid.NewGuid():N}.tmp";
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        try
        {
            var (hint, shrunk) = ShrinkOnLoad(input, inputFormat, steps);
            var image = Run([.. hint, $"{inputFormat}:{input}[0]", .. shrunk.SelectMany(Operations.Options), $"{format}:{temp}"]);
            File.Move(temp, output, overwrite: true);
            return (image.Width, image.Height, null);
        }
        catch (MagickException e)
        {
            return (null, null, e.Message);
        }
        finally
        {
            File.Delete(temp); // what a failed or stopped command wrote; nothing once published
        }
    }

    // libjpeg decodes at 1/2, 1/4, 1/8... of the size when told the size wanted (jpeg:size; above the photo's it enlarges):
    // a first resize that halves the photo or more never decodes the pixels it drops, and is told the exact size it would
    // have made of the whole. A photo on its side is decoded whole, as an autoorient before the resize would turn it.
    static (string[] Hint, Step[] Steps) ShrinkOnLoad(string input, string format, Step[] steps)
    {
        var at = Array.FindIndex(steps, step => step.Op is not ("autoorient" or "grayscale" or "flip" or "flop" or "strip"));
        if (format != "jpeg" || at < 0 || steps[at] is not { Op: "resize" or "thumbnail" } resize)
            return ([], steps);
        var (width, height, _, orientation, _, _) = Ping(input);
        var (x, y, w, h) = ((nint)0, (nint)0, (nuint)width, (nuint)height);
        ParseMetaGeometry(resize.Arg, ref x, ref y, ref w, ref h); // the size ImageMagick's resize makes of the photo
        return 2 * w > (nuint)width || 2 * h > (nuint)height || orientation is "LeftTop" or "RightTop" or "RightBottom" or "LeftBottom"
            ? ([], steps) : (["-define", $"jpeg:size={w}x{h}"], [.. steps[..at], resize with { Arg = $"{w}x{h}!" }, .. steps[(at + 1)..]]);
    }

    // Runs `convert` in process; it reports the image it made as -format tells, a field a line. An operation stopped at the
    // deadline may leave its image as it was and the command going on: the clock decides.
    static Header Run(string[] options)
    {
        var (imageInfo, exception, metadata) = (AcquireImageInfo(), AcquireExceptionInfo(), (nint)0);
        string[] arguments = ["convert", "-format", @"%w\n%h\n%m\n%[orientation]\n%[EXIF:DateTimeOriginal]\n%[EXIF:Model]", .. options];
        var deadline = Environment.TickCount64 + TimeLimit * 1000L;
        SetImageInfoProgressMonitor(imageInfo, BeforeDeadline, (nint)deadline);
        try
        {
            if (!ConvertImageCommand(imageInfo, arguments.Length, arguments, ref metadata, exception) | Environment.TickCount64 >= deadline)
                throw new MagickException(Environment.TickCount64 >= deadline ? $"stopped at the time limit of {TimeLimit} s per job (JOB_SECONDS)"
                    : Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(exception, ReasonOffset))!);
            var fields = Marshal.PtrToStringUTF8(metadata)!.Split('\n');
            return (int.Parse(fields[0]), int.Parse(fields[1]), fields[2].ToLowerInvariant(), fields[3], DateTime.TryParseExact(fields[4],
                "yyyy:MM:dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AllowWhiteSpaces, out var captured) ? captured : null,
                fields[5].Trim() is { Length: > 0 } camera ? camera : null);
        }
        finally
        {
            RelinquishMagickMemory(metadata);
            DestroyExceptionInfo(exception);
            DestroyImageInfo(imageInfo);
        }
    }

    [DllImport("libc")] static extern int setenv(string name, string value, int overwrite);
    [DllImport(Core)] static extern void MagickCoreGenesis(string? path, bool establishSignalHandlers);
    [DllImport(Core)] static extern nint AcquireImageInfo();
    [DllImport(Core)] static extern nint DestroyImageInfo(nint imageInfo);
    [DllImport(Core)] static extern nint AcquireExceptionInfo();
    [DllImport(Core)] static extern nint DestroyExceptionInfo(nint exception);
    [DllImport(Core)] static extern nint RelinquishMagickMemory(nint memory);
    [DllImport(Core)] static extern nint SetImageInfoProgressMonitor(nint imageInfo, ProgressMonitor monitor, nint clientData);
    [DllImport(Core)] static extern int ParseMetaGeometry(string geometry, ref nint x, ref nint y, ref nuint width, ref nuint height);
    [DllImport(Wand)] static extern bool ConvertImageCommand(nint imageInfo, int argc, string[] argv, ref nint metadata, nint exception);
}

public sealed class MagickException(string message) : Exception(message);
