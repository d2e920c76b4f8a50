using System.Globalization;
using System.Runtime.InteropServices;
using static ImageProcessor.MagickWand;

namespace ImageProcessor;

/// <summary>
/// One image held by ImageMagick. Every native call is checked: a failure throws MagickException with ImageMagick's
/// own reason, so a bad photo or operation fails its job instead of the process.
/// </summary>
public sealed class Image : IDisposable
{
    static readonly nint Background; // what rotate fills the corners with: a new pixel wand is opaque black
    readonly nint wand = NewMagickWand();

    static Image()
    {
        MagickWandGenesis();
        Background = NewPixelWand();
    }

    Image(Func<nint, bool> load)
    {
        if (!load(wand))
        {
            var reason = Reason();
            DestroyMagickWand(wand);
            throw new MagickException(reason);
        }
    }

    /// <summary>Reads only the header: the size and format of an upload, without decoding its pixels.</summary>
    public static Image Ping(string path) => new(wand => MagickPingImage(wand, path));

    /// <summary>Decodes the first frame, with the format named so that the content cannot choose another coder.</summary>
    public static Image Read(string path, string format) => new(wand => MagickReadImage(wand, $"{format}:{path}[0]"));

    public int Width => (int)MagickGetImageWidth(wand);
    public int Height => (int)MagickGetImageHeight(wand);
    public string Format => Take(MagickGetImageFormat(wand)).ToLowerInvariant();

    public void Apply(Step step) => Check(step.Op switch
    {
        "resize" => Resize(step.Arg, (width, height) => MagickResizeImage(wand, width, height, UndefinedFilter, 1.0)),
        "thumbnail" => Resize(step.Arg, (width, height) => MagickThumbnailImage(wand, width, height)),
        "crop" => Crop(step.Arg),
        "rotate" => MagickRotateImage(wand, Background, Number(step.Arg)),
        "autoorient" => MagickAutoOrientImage(wand),
        "flip" => MagickFlipImage(wand),
        "flop" => MagickFlopImage(wand),
        "grayscale" => MagickTransformImageColorspace(wand, GrayColorspace),
        "blur" => MagickBlurImage(wand, 0, Number(step.Arg)),
        "sharpen" => MagickSharpenImage(wand, 0, Number(step.Arg)),
        "normalize" => MagickNormalizeImage(wand),
        "modulate" => Modulate([.. step.Arg.Split(',').Select(Number), 100, 100]),
        "strip" => MagickStripImage(wand),
        "quality" => MagickSetImageCompressionQuality(wand, nuint.Parse(step.Arg)),
        "format" => true, // takes effect in Write
        _ => throw new MagickException($"unknown operation '{step.Op}'"),
    });

    /// <summary>Writes atomically: readers of path see the whole old file or the whole new one, never part of one.</summary>
    public void Write(string path, string format)
    {
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            Check(MagickWriteImage(wand, $"{format}:{temp}"));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public void Dispose() => DestroyMagickWand(wand);

    // ParseMetaGeometry computes the size `convert -resize` would: it knows ! ^ > < and % relative to the current size.
    bool Resize(string geometry, Func<nuint, nuint, bool> resize)
    {
        nint x = 0, y = 0;
        nuint width = MagickGetImageWidth(wand), height = MagickGetImageHeight(wand);
        ParseMetaGeometry(geometry, ref x, ref y, ref width, ref height);
        return resize(width, height);
    }

    // Without an offset the crop is centred; resetting the page drops the virtual canvas, as +repage does.
    bool Crop(string geometry)
    {
        nint x = 0, y = 0;
        nuint width = 0, height = 0;
        if ((GetGeometry(geometry, ref x, ref y, ref width, ref height) & XValue) == 0)
            (x, y) = (((nint)MagickGetImageWidth(wand) - (nint)width) / 2, ((nint)MagickGetImageHeight(wand) - (nint)height) / 2);
        return MagickCropImage(wand, width, height, x, y) && MagickSetImagePage(wand, 0, 0, 0, 0);
    }

    bool Modulate(double[] percents) => MagickModulateImage(wand, percents[0], percents[1], percents[2]);

    static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    void Check(bool ok)
    {
        if (!ok)
            throw new MagickException(Reason());
    }

    string Reason() => Take(MagickGetException(wand, out _));

    static string Take(nint text)
    {
        var value = Marshal.PtrToStringUTF8(text) ?? "";
        MagickRelinquishMemory(text);
        return value;
    }
}

public sealed class MagickException(string message) : Exception(message);
