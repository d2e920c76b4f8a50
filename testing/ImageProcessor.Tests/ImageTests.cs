using System.Diagnostics;
using System.Globalization;

namespace ImageProcessor.Tests;

/// <summary>
/// Every step means what ImageMagick means by it: the same size, format and colorspace as the `convert` command (Debian's
/// ImageMagick 6 Q16) given the option it stands for, read back with identify, and nearly the same pixels: our engine is
/// ImageMagick 7 Q8, whose results differ in the last bits.
/// </summary>
public sealed class ImageTests
{
    // The mean difference, over every pixel and channel, that ImageMagick 7 Q8 and 6 Q16 may show for the same operation.
    const double Tolerance = 0.005;
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
    [InlineData("flip", "-flip")]
    [InlineData("flop", "-flop")]
    [InlineData("strip", "-strip")]
    [InlineData("grayscale", "-colorspace gray")]
    [InlineData("modulate 100,0", "-modulate 100,0")]
    [InlineData("modulate 120,80,150", "-modulate 120,80,150")]
    [InlineData("blur 2", "-blur 0x2")]
    [InlineData("sharpen 1.5", "-sharpen 0x1.5")]
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
        Assert.InRange(Difference(ours, theirs), 0, Tolerance);
    }

    // ImageMagick 7's normalize maps the darkest 2% of the pixels to black and the lightest 1% to white, what 6 calls
    // -contrast-stretch 2%x1%; 6's own normalize clips only 0.15% and 0.05%, so its output is visibly flatter.
    [Fact]
    public void NormalizeStretchesTheContrastAsImageMagick7Does()
    {
        var (ours, seven, six) = (Path.Combine(Folder, "normalized.png"), Path.Combine(Folder, "stretched.png"), Path.Combine(Folder, "six.png"));

        Magick.Convert(Photo, "jpeg", [new Step("normalize")], ours, "png");
        Helpers.Run("convert", Photo, "-contrast-stretch", "2%x1%", seven);
        Helpers.Run("convert", Photo, "-normalize", six);

        Assert.Equal(Helpers.Identify(File.ReadAllBytes(seven)), Helpers.Identify(File.ReadAllBytes(ours)));
        Assert.InRange(Difference(ours, seven), 0, Tolerance);
        Assert.InRange(Difference(ours, six), 0.01, 1);
    }

    [Theory]
    [InlineData("quality 40", "-quality 40")]
    [InlineData("strip | quality 90", "-strip -quality 90")]
    public void AJpegIsWrittenAtTheQualityConvertGives(string steps, string options)
    {
        var (ours, theirs) = (Path.Combine(Folder, $"{Guid.NewGuid():N}.jpg"), Path.Combine(Folder, $"{Guid.NewGuid():N}.jpg"));

        Magick.Convert(Photo, "jpeg", [.. Operations.Parse(steps)[0].Steps], ours, "jpeg");
        Helpers.Run("convert", [Photo, .. options.Split(' '), theirs]);

        Assert.Equal(Helpers.Run("identify", "-format", "%wx%h %m %Q", theirs), Helpers.Run("identify", "-format", "%wx%h %m %Q", ours));
        Assert.InRange(Difference(ours, theirs), 0, Tolerance);
    }

    // A JPEG that the first resize at least halves is decoded at reduced size, and the resize is given the exact size
    // it would have made of the whole photo: the same size as convert's, and nearly the same pixels as the whole decode
    // (which a rotate 0 in front forces). A photo whose orientation turns it on its side, and a resize that does not
    // halve, take the whole decode: the same pixels.
    [Theory]
    [InlineData(false, "resize 640x360", "-resize 640x360", true)]
    [InlineData(false, "resize 640x360!", "-resize 640x360!", false)] // exact and filling geometries are decoded whole
    [InlineData(false, "thumbnail 100x100^", "-thumbnail 100x100^", false)]
    [InlineData(false, "resize 25%", "-resize 25%", true)]
    [InlineData(false, "resize x200", "-resize x200", true)]
    [InlineData(false, "resize 600", "-resize 600", true)]
    [InlineData(false, "resize 600^", "-resize 600^", false)]
    [InlineData(false, "resize x300^", "-resize x300^", false)]
    [InlineData(false, "resize x300!", "-resize x300!", false)]
    [InlineData(false, "resize 600x300>", "-resize 600x300>", true)]
    [InlineData(false, "grayscale | flip | resize 300", "-colorspace gray -flip -resize 300", true)]
    [InlineData(false, "autoorient | resize 50%", "-auto-orient -resize 50%", true)]
    [InlineData(false, "resize 2000x2000>", "-resize 2000x2000>", false)]
    [InlineData(false, "resize 600x300<", "-resize 600x300<", false)]
    [InlineData(false, "resize 4000x4000<", "-resize 4000x4000<", false)]
    [InlineData(false, "crop 1000x1000 | resize 10%", "-gravity center -crop 1000x1000+0+0 +gravity +repage -resize 10%", false)]
    [InlineData(true, "autoorient | resize 640x360", "-auto-orient -resize 640x360", false)]
    [InlineData(true, "autoorient | grayscale | resize 50%", "-auto-orient -colorspace gray -resize 50%", false)]
    [InlineData(true, "resize 640x360", "-resize 640x360", false)]
    public void AJpegShrunkOnLoadHasTheSizeConvertGives(bool onItsSide, string steps, string options, bool shrunk)
    {
        var photo = Path.Combine(Folder, $"{Guid.NewGuid():N}.jpg");
        File.WriteAllBytes(photo, onItsSide ? OnItsSide() : File.ReadAllBytes(Helpers.Sample("ladybird")));
        var (ours, whole, theirs) = (Path.Combine(Folder, $"{Guid.NewGuid():N}.png"), Path.Combine(Folder, $"{Guid.NewGuid():N}.png"),
            Path.Combine(Folder, $"{Guid.NewGuid():N}.png"));

        Magick.Convert(photo, "jpeg", [.. Operations.Parse(steps)[0].Steps], ours, "png");
        Magick.Convert(photo, "jpeg", [.. Operations.Parse($"rotate 0 | {steps}")[0].Steps], whole, "png");
        Helpers.Run("convert", [photo, .. options.Split(' '), theirs]);

        Assert.Equal(Helpers.Identify(File.ReadAllBytes(theirs)), Helpers.Identify(File.ReadAllBytes(ours)));
        Assert.InRange(Difference(ours, theirs), 0, 0.01);
        if (shrunk)
            Assert.InRange(Difference(ours, whole), 1e-6, 0.01); // different, as a smaller decode is, but by under 1% on average
        else
            Assert.Equal(0, Difference(ours, whole));
    }

    [Fact]
    public void OurPolicyIsWhatTheLibraryInUseEnforces()
    {
        Assert.StartsWith("ImageMagick 7.", MagickNET.ImageMagickVersion);
        Assert.Equal(1UL, ResourceLimits.Thread);
        Assert.Equal(32UL, ResourceLimits.ListLength);
        Assert.Equal(16000UL, ResourceLimits.Width);
        Assert.Equal(256UL << 20, ResourceLimits.Memory);
        Assert.Equal(ulong.MaxValue >> 1, ResourceLimits.Time); // none: the processor's own deadline stops a job mid-step
    }

    // Magick.NET ignores a policy given too late, and says nothing: what ImageMagick enforces is checked at start. Here
    // each service is given a policy.xml that refuses nothing, beside the rest of its program as built.
    [Theory]
    [InlineData("Api")]
    [InlineData("Converter")]
    [InlineData("Processor")]
    public async Task AServiceWhosePolicyIsNotInForceRefusesToStart(string project)
    {
        var built = Path.GetDirectoryName(Cluster.Built(project))!;
        var folder = Directory.CreateTempSubdirectory($"{project}-").FullName;
        foreach (var file in Directory.GetFiles(built).Where(file => Path.GetFileName(file) != "policy.xml"))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file))); // copied: .NET finds a program's folder behind links
        foreach (var directory in Directory.GetDirectories(built)) // the native libraries, 240 MB
            Directory.CreateSymbolicLink(Path.Combine(folder, Path.GetFileName(directory)), directory);
        File.WriteAllText(Path.Combine(folder, "policy.xml"), "<policymap />");

        var start = new ProcessStartInfo("dotnet", [Path.Combine(folder, $"{project}.dll")])
            { RedirectStandardOutput = true, RedirectStandardError = true, Environment = { ["NAS"] = Path.Combine(folder, "nas") } };
        using var service = Process.Start(start)!;
        var (output, errors) = (service.StandardOutput.ReadToEndAsync(), service.StandardError.ReadToEndAsync());

        var exited = service.WaitForExit(60_000);
        if (!exited)
            service.Kill(entireProcessTree: true); // a service that runs without the policy is not left running
        Assert.True(exited, $"{project} started without its policy");
        Assert.NotEqual(0, service.ExitCode);
        Assert.Contains($"ImageMagick does not enforce {Path.Combine(folder, "policy.xml")}", await errors + await output);
    }

    [Fact]
    public void PingReadsTheSizeAndFormatFromTheHeader()
    {
        Assert.Equal((800u, 640u, MagickFormat.Png), Header(Helpers.Sample("meadow")));
        Assert.Equal((2560u, 1600u, MagickFormat.Jpeg), Header(Helpers.Sample("ladybird")));
        Assert.Equal((640u, 480u, MagickFormat.Jpeg), Header(Path.Combine(Cluster.Root, "testing", "photos", "wood.jpg")));

        static (uint, uint, MagickFormat) Header(string path)
        {
            using var photo = File.OpenRead(path);
            var header = Magick.Ping(photo);
            return (header.Width, header.Height, header.Format);
        }
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

    // The ladybird with one EXIF segment, whose orientation (6, RightTop) says the photo is turned on its side, in place
    // of its own (a JPEG with two would leave which one counts to the reader).
    static byte[] OnItsSide()
    {
        var jpeg = Path.Combine(Folder, $"{Guid.NewGuid():N}.jpg");
        Helpers.Run("convert", Helpers.Sample("ladybird"), "-strip", jpeg);
        byte[] exif = [.. "Exif\0\0MM\0*"u8, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
        var bytes = File.ReadAllBytes(jpeg);
        return [.. bytes[..2], 0xFF, 0xE1, 0, (byte)(exif.Length + 2), .. exif, .. bytes[2..]];
    }

    // The mean difference of two images over every pixel and channel, from 0 (the same) to 1, as convert measures it.
    static double Difference(string a, string b) => double.Parse(Helpers.Run("convert", a, b, "-compose", "difference", "-composite",
        "-format", "%[fx:mean]", "info:"), CultureInfo.InvariantCulture);

    static string Small()
    {
        var path = Path.Combine(Folder, "ladybird.jpg");
        Helpers.Run("convert", Helpers.Sample("ladybird"), "-resize", "640x400", path);
        return path;
    }
}
