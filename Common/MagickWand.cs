using System.Runtime.InteropServices;

namespace ImageProcessor;

/// <summary>
/// ImageMagick 6 (Q16, as Debian ships it) bound directly, since our package source has no Magick.NET. Only what Magick
/// uses: MagickWand's ConvertImageCommand, which runs `convert` in process, and the MagickCore calls around it.
/// </summary>
static class MagickWand
{
    const string Wand = "libMagickWand-6.Q16.so.6", Core = "libMagickCore-6.Q16.so.6";

    // The head of MagickCore's ExceptionInfo (magick/exception.h): enough to read the reason.
    [StructLayout(LayoutKind.Sequential)]
    public readonly record struct ExceptionInfo(int Severity, int ErrorNumber, nint Reason, nint Description);

    [DllImport(Core)] public static extern void MagickCoreGenesis(string? path, bool establishSignalHandlers);
    [DllImport(Core)] public static extern nint AcquireImageInfo();
    [DllImport(Core)] public static extern nint DestroyImageInfo(nint imageInfo);
    [DllImport(Core)] public static extern nint AcquireExceptionInfo();
    [DllImport(Core)] public static extern nint DestroyExceptionInfo(nint exception);
    [DllImport(Core)] public static extern nint RelinquishMagickMemory(nint memory);
    [DllImport(Wand)] public static extern bool ConvertImageCommand(nint imageInfo, int argc, string[] argv, ref nint metadata, nint exception);
}
