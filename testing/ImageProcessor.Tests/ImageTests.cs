using System.Globalization;
using System.Runtime.InteropServices;

namespace ImageProcessor.Tests;

/// <summary>
/// Every step means what ImageMagick means by it: the same result as the `convert` command given the option it
/// stands for, read back with identify.
/// </summary>
public sealed class ImageTests
{
    static readonly string Folder = Directory.CreateTempSubdirectory("imageprocessor-image-").FullName;
    static readonly string Photo = Small(); // 640x400 JPEG

    [Theory]
    [InlineData("resize 320x180", "-resize 320x180")]
    [InlineData("resize 320x180!", "-resize 320x180!")]
    [InlineData("resize 320x180^", "-resize 320x180^")]
    [InlineData("resize 4000x4000>", "-resize 4000x4000>")]
    [InlineData("resize 4000x4000<", "-resize 4000x4000<")]
    [InlineData("resize 33%", "-resize 33%")]
    [InlineData("resize x90", "-resize x90")]
    [InlineData("thumbnail 160x90", "-thumbnail 160x90")]
    [InlineData("crop 300x200", "-gravity center -crop 300x200+0+0 +repage")]
    [InlineData("crop 300x200+500+10", "-crop 300x200+500+10 +repage")]
    [InlineData("rotate 30", "-rotate 30")]
    [InlineData("autoorient", "-auto-orient")]
    [InlineData("grayscale", "-colorspace gray")]
    [InlineData("modulate 100,0", "-modulate 100,0")]
    [InlineData("blur 2", "-blur 0x2")]
    public void AppliesEachStepAsConvertDoes(string step, string options)
    {
        var words = step.Split(' ');
        var ours = Path.Combine(Folder, $"{Guid.NewGuid():N}.png");
        var theirs = Path.Combine(Folder, $"{Guid.NewGuid():N}.png");

        var size = Magick.Convert(Photo, "jpeg", [new Step(words[0], words.Length > 1 ? words[1] : "")], ours, "png");
        Helpers.Run("convert", [Photo, .. options.Split(' '), theirs]);

        var identified = Helpers.Identify(File.ReadAllBytes(theirs));
        Assert.Equal(identified, Helpers.Identify(File.ReadAllBytes(ours)));
        Assert.Equal($"{size.Width}x{size.Height}", identified.Split(' ')[0]);
    }

    // A JPEG that the first resize at least halves is decoded at reduced size, and the resize is given the exact size
    // it would have made of the whole photo: the same size as convert's, and nearly the same pixels. A photo whose
    // orientation turns it on its side, and a resize that does not halve, take the whole decode: the same pixels.
    [Theory]
    [InlineData(false, "resize 640x360", "-resize 640x360", true)]
    [InlineData(false, "resize 640x360!", "-resize 640x360!", true)]
    [InlineData(false, "thumbnail 100x100^", "-thumbnail 100x100^", true)]
    [InlineData(false, "resize 25%", "-resize 25%", true)]
    [InlineData(false, "resize x200", "-resize x200", true)]
    [InlineData(false, "grayscale | flip | resize 300", "-colorspace gray -flip -resize 300", true)]
    [InlineData(false, "autoorient | resize 50%", "-auto-orient -resize 50%", true)]
    [InlineData(false, "resize 2000x2000>", "-resize 2000x2000>", false)]
    [InlineData(false, "resize 4000x4000<", "-resize 4000x4000<", false)]
    [InlineData(false, "crop 1000x1000 | resize 10%", "-gravity center -crop 1000x1000+0+0 +gravity +repage -resize 10%", false)]
    [InlineData(true, "autoorient | resize 640x360", "-auto-orient -resize 640x360", false)]
    [InlineData(true, "autoorient | grayscale | resize 50%", "-auto-orient -colorspace gray -resize 50%", false)]
    [InlineData(true, "resize 640x360", "-resize 640x360", false)]
    public void AJpegShrunkOnLoadHasTheSizeConvertGives(bool onItsSide, string steps, string options, bool shrunk)
    {
        var photo = Path.Combine(Folder, $"{Guid.NewGuid():N}.jpg");
        File.WriteAllBytes(photo, onItsSide ? OnItsSide(File.ReadAllBytes(Helpers.Sample("ladybird"))) : File.ReadAllBytes(Helpers.Sample("ladybird")));
        var ours = Path.Combine(Folder, $"{Guid.NewGuid():N}.png");
        var theirs = Path.Combine(Folder, $"{Guid.NewGuid():N}.png");

        Magick.Convert(photo, "jpeg", [.. Operations.Parse(steps)[0].Steps], ours, "png");
        Helpers.Run("convert", [photo, .. options.Split(' '), theirs]);

        Assert.Equal(Helpers.Identify(File.ReadAllBytes(theirs)), Helpers.Identify(File.ReadAllBytes(ours)));
        var difference = double.Parse(Helpers.Run("convert", ours, theirs, "-compose", "difference", "-composite", "-format",
            "%[fx:mean]", "info:"), CultureInfo.InvariantCulture);
        if (shrunk)
            Assert.InRange(difference, 1e-6, 0.01); // different, as a smaller decode is, but by under 1% on average
        else
            Assert.Equal(0, difference);
    }

    [Fact]
    public void OurPolicyAllowsOneThreadAndNoTimeLimit()
    {
        Magick.Ping(Photo); // loads the policy
        const int Thread = 6, Time = 7; // ImageMagick 6.9's ResourceType (magick/resource_.h)
        Assert.Equal(1UL, GetMagickResourceLimit(Thread));
        // ImageMagick 6 counts the time limit from the process's first image and exits the process when it runs out.
        Assert.Equal((ulong)long.MaxValue, GetMagickResourceLimit(Time));
    }

    [Fact]
    public void PingReadsTheSizeAndFormatFromTheHeader()
    {
        File.WriteAllBytes(Path.Combine(Folder, "side.jpg"), OnItsSide(File.ReadAllBytes(Helpers.Sample("ladybird"))));
        Assert.Equal((800, 640, "png", "Undefined", null, null), Magick.Ping(Helpers.Sample("meadow")));
        Assert.Equal("RightTop", Magick.Ping(Path.Combine(Folder, "side.jpg")).Orientation);
        Assert.Equal((2560, 1600, "jpeg", "Undefined", null, null), Magick.Ping(Helpers.Sample("ladybird")));
        // The time it was taken and the camera's model come from EXIF, when the photo has them.
        Assert.Equal((640, 480, "jpeg", "TopLeft", new DateTime(2008, 4, 19, 13, 43, 16), "DiMAGE Z5"),
            Magick.Ping(Path.Combine(Cluster.Root, "testing", "photos", "wood.jpg")));
    }

    [Fact]
    public void AFileThatIsNotAnImageFailsWithImageMagicksReason()
    {
        var path = Path.Combine(Folder, "text.jpg");
        File.WriteAllText(path, "not a photo");

        var (width, height, error) = Magick.Convert(path, "jpeg", [], Path.Combine(Folder, "x.png"), "png");
        Assert.StartsWith("insufficient image data in file `", error);
        Assert.Contains("' @ error/jpeg.c/", error);
        Assert.Equal((null, null), (width, height));
        Assert.Empty(Directory.GetFiles(Folder, "x.png*")); // nor a temporary file left behind
    }

    [Fact]
    public void WritingLeavesOnlyTheWholeOutput()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;

        Magick.Convert(Photo, "jpeg", [new Step("thumbnail", "64x64")], Path.Combine(folder, "out.webp"), "webp");

        Assert.Equal(["out.webp"], Directory.GetFiles(folder).Select(Path.GetFileName));
        Assert.Equal("64x40 WEBP sRGB", Helpers.Identify(File.ReadAllBytes(Path.Combine(folder, "out.webp"))));
    }

    // The JPEG with an EXIF segment whose orientation (6, RightTop) says the photo is turned on its side.
    static byte[] OnItsSide(byte[] jpeg)
    {
        byte[] exif = [.. "Exif\0\0MM\0*"u8, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
        return [.. jpeg[..2], 0xFF, 0xE1, 0, (byte)(exif.Length + 2), .. exif, .. jpeg[2..]];
    }

    [DllImport("libMagickCore-6.Q16.so.6")]
    static extern ulong GetMagickResourceLimit(int type);

    static string Small()
    {
        var path = Path.Combine(Folder, "ladybird.jpg");
        Helpers.Run("convert", Helpers.Sample("ladybird"), "-resize", "640x400", path);
        return path;
    }
}
