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

    [Fact]
    public void PingReadsTheSizeAndFormatFromTheHeader()
    {
        Assert.Equal((800, 640, "png"), Magick.Ping(Helpers.Sample("meadow")));
        Assert.Equal((2560, 1600, "jpeg"), Magick.Ping(Helpers.Sample("ladybird")));
    }

    [Fact]
    public void AFileThatIsNotAnImageFailsWithImageMagicksReason()
    {
        var path = Path.Combine(Folder, "text.jpg");
        File.WriteAllText(path, "not a photo");

        var error = Assert.Throws<MagickException>(() => Magick.Convert(path, "jpeg", [], Path.Combine(Folder, "x.png"), "png"));
        Assert.StartsWith("insufficient image data in file `", error.Message);
        Assert.Contains("' @ error/jpeg.c/", error.Message);
    }

    [Fact]
    public void WritingLeavesOnlyTheWholeOutput()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;

        Magick.Convert(Photo, "jpeg", [new Step("thumbnail", "64x64")], Path.Combine(folder, "out.webp"), "webp");

        Assert.Equal(["out.webp"], Directory.GetFiles(folder).Select(Path.GetFileName));
        Assert.Equal("64x40 WEBP sRGB", Helpers.Identify(File.ReadAllBytes(Path.Combine(folder, "out.webp"))));
    }

    static string Small()
    {
        var path = Path.Combine(Folder, "ladybird.jpg");
        Helpers.Run("convert", Helpers.Sample("ladybird"), "-resize", "640x400", path);
        return path;
    }
}
