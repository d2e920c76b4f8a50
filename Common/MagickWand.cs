using System.Runtime.InteropServices;

namespace ImageProcessor;

/// <summary>
/// ImageMagick's C API (MagickWand, ImageMagick 6 Q16 as Debian ships it), bound directly: Magick.NET is not served by
/// our package source, and this is the same engine the `convert` command drives. Only what Image uses is declared.
/// </summary>
static class MagickWand
{
    const string Wand = "libMagickWand-6.Q16.so.6", Core = "libMagickCore-6.Q16.so.6";
    public const int GrayColorspace = 2, UndefinedFilter = 0, XValue = 1;

    [DllImport(Wand)] public static extern void MagickWandGenesis();
    [DllImport(Wand)] public static extern nint NewMagickWand();
    [DllImport(Wand)] public static extern nint DestroyMagickWand(nint wand);
    [DllImport(Wand)] public static extern nint NewPixelWand();
    [DllImport(Wand)] public static extern nint MagickGetException(nint wand, out int severity);
    [DllImport(Wand)] public static extern nint MagickRelinquishMemory(nint memory);
    [DllImport(Wand)] public static extern bool MagickPingImage(nint wand, string path);
    [DllImport(Wand)] public static extern bool MagickReadImage(nint wand, string path);
    [DllImport(Wand)] public static extern bool MagickWriteImage(nint wand, string path);
    [DllImport(Wand)] public static extern nuint MagickGetImageWidth(nint wand);
    [DllImport(Wand)] public static extern nuint MagickGetImageHeight(nint wand);
    [DllImport(Wand)] public static extern nint MagickGetImageFormat(nint wand);
    [DllImport(Wand)] public static extern bool MagickSetImageFormat(nint wand, string format);
    [DllImport(Wand)] public static extern bool MagickSetImageCompressionQuality(nint wand, nuint quality);
    [DllImport(Wand)] public static extern bool MagickResizeImage(nint wand, nuint width, nuint height, int filter, double blur);
    [DllImport(Wand)] public static extern bool MagickThumbnailImage(nint wand, nuint width, nuint height);
    [DllImport(Wand)] public static extern bool MagickCropImage(nint wand, nuint width, nuint height, nint x, nint y);
    [DllImport(Wand)] public static extern bool MagickSetImagePage(nint wand, nuint width, nuint height, nint x, nint y);
    [DllImport(Wand)] public static extern bool MagickRotateImage(nint wand, nint background, double degrees);
    [DllImport(Wand)] public static extern bool MagickAutoOrientImage(nint wand);
    [DllImport(Wand)] public static extern bool MagickFlipImage(nint wand);
    [DllImport(Wand)] public static extern bool MagickFlopImage(nint wand);
    [DllImport(Wand)] public static extern bool MagickTransformImageColorspace(nint wand, int colorspace);
    [DllImport(Wand)] public static extern bool MagickBlurImage(nint wand, double radius, double sigma);
    [DllImport(Wand)] public static extern bool MagickSharpenImage(nint wand, double radius, double sigma);
    [DllImport(Wand)] public static extern bool MagickNormalizeImage(nint wand);
    [DllImport(Wand)] public static extern bool MagickModulateImage(nint wand, double brightness, double saturation, double hue);
    [DllImport(Wand)] public static extern bool MagickStripImage(nint wand);
    [DllImport(Core)] public static extern int ParseMetaGeometry(string geometry, ref nint x, ref nint y, ref nuint width, ref nuint height);
    [DllImport(Core)] public static extern int GetGeometry(string geometry, ref nint x, ref nint y, ref nuint width, ref nuint height);
}
