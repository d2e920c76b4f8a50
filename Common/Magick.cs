using System.Runtime.InteropServices;

namespace ImageProcessor;

/// <summary>
/// ImageMagick 6 (Q16, as Debian ships it), bound directly since our package source has no Magick.NET, and driven in
/// process through its own command layer: each step becomes the `convert` option of that name, so it means exactly what
/// it means to ImageMagick. A failure throws MagickException with ImageMagick's own reason.
/// </summary>
public static class Magick
{
    const string Wand = "libMagickWand-6.Q16.so.6", Core = "libMagickCore-6.Q16.so.6";
    const int ReasonOffset = 8; // MagickCore's ExceptionInfo (magick/exception.h) begins: int severity, error_number; char *reason

    static Magick()
    {
        // Our policy.xml, beside the program, refuses every coder but the five formats, all delegates and @file
        // indirection, and caps memory, size, time and frames. .NET keeps its own signal handlers.
        setenv("MAGICK_CONFIGURE_PATH", AppContext.BaseDirectory, overwrite: 1);
        MagickCoreGenesis(null, establishSignalHandlers: false);
    }

    /// <summary>Reads only the header of the first frame: the size and format of an upload, without its pixels.</summary>
    public static (int Width, int Height, string Format) Ping(string path) => Run(["convert", "-ping", $"{path}[0]", "null:"]);

    /// <summary>Applies the steps to the first frame of input, whose format is named so that its content cannot choose
    /// another coder, and writes output atomically: whole or not at all. Returns the output's size.</summary>
    public static (int Width, int Height) Convert(string input, string inputFormat, Step[] steps, string output, string format)
    {
        var temp = $"{output}.{Guid.NewGuid():N}.tmp";
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        var image = Run(["convert", $"{inputFormat}:{input}[0]", .. steps.SelectMany(Options), $"{format}:{temp}"]);
        File.Move(temp, output, overwrite: true);
        return (image.Width, image.Height);
    }

    static string[] Options(Step step) => step.Op switch
    {
        "crop" when !step.Arg.Contains('+') && !step.Arg.Contains('-') =>
            ["-gravity", "center", "-crop", $"{step.Arg}+0+0", "+gravity", "+repage"],
        "crop" => ["-crop", step.Arg, "+repage"],
        "autoorient" => ["-auto-orient"],
        "grayscale" => ["-colorspace", "gray"],
        "blur" or "sharpen" => [$"-{step.Op}", $"0x{step.Arg}"], // radius 0: ImageMagick picks one to suit sigma
        "resize" or "thumbnail" or "rotate" or "modulate" or "quality" => [$"-{step.Op}", step.Arg],
        "flip" or "flop" or "normalize" or "strip" => [$"-{step.Op}"],
        "format" => [], // names the output file
        _ => throw new MagickException($"unknown operation '{step.Op}'"),
    };

    // Runs `convert` in process; it reports the size and format of the image it made as "width,height,format".
    static (int Width, int Height, string Format) Run(string[] arguments)
    {
        var (imageInfo, exception, metadata) = (AcquireImageInfo(), AcquireExceptionInfo(), (nint)0);
        try
        {
            if (!ConvertImageCommand(imageInfo, arguments.Length, arguments, ref metadata, exception))
                throw new MagickException(Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(exception, ReasonOffset))!);
            var fields = Marshal.PtrToStringUTF8(metadata)!.Split(',');
            return (int.Parse(fields[0]), int.Parse(fields[1]), fields[2].ToLowerInvariant());
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
    [DllImport(Wand)] static extern bool ConvertImageCommand(nint imageInfo, int argc, string[] argv, ref nint metadata, nint exception);
}

public sealed class MagickException(string message) : Exception(message);
