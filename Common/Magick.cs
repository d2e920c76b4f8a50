using System.Runtime.InteropServices;
using static ImageProcessor.MagickWand;

namespace ImageProcessor;

/// <summary>
/// ImageMagick, driven in process through its own command layer: each step becomes the `convert` option of that name,
/// so it means exactly what it means to ImageMagick. A failure throws MagickException with ImageMagick's own reason.
/// </summary>
public static class Magick
{
    static Magick() => MagickCoreGenesis(null, establishSignalHandlers: false); // .NET keeps its own signal handlers

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
                throw new MagickException(Marshal.PtrToStringUTF8(Marshal.PtrToStructure<ExceptionInfo>(exception).Reason)!);
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
}

public sealed class MagickException(string message) : Exception(message);
