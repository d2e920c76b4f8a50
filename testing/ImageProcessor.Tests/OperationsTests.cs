using ImageProcessor;

namespace ImageProcessor.Tests;

/// <summary>The operations language: every operation and argument form, and every mistake with its exact message.</summary>
public sealed class OperationsTests
{
    [Theory]
    [InlineData("resize 640x360")]
    [InlineData("resize 640x360!")]
    [InlineData("resize 640x360^")]
    [InlineData("resize 640x360>")]
    [InlineData("resize 640x360<")]
    [InlineData("resize 640")]
    [InlineData("resize 640x")]
    [InlineData("resize x360")]
    [InlineData("resize 50%")]
    [InlineData("resize 400%")]
    [InlineData("resize 10000x10000")]
    [InlineData("thumbnail 320x180")]
    [InlineData("crop 200x100")]
    [InlineData("crop 200x100+10+20")]
    [InlineData("crop 200x100-10+0")]
    [InlineData("rotate 90")]
    [InlineData("rotate -45.5")]
    [InlineData("blur 0.5")]
    [InlineData("sharpen 2")]
    [InlineData("quality 1")]
    [InlineData("quality 100")]
    [InlineData("modulate 120")]
    [InlineData("modulate 120,80")]
    [InlineData("modulate 100,100,200")]
    [InlineData("format jpeg")]
    [InlineData("format png")]
    [InlineData("format webp")]
    [InlineData("format gif")]
    [InlineData("format tiff")]
    [InlineData("autoorient")]
    [InlineData("flip")]
    [InlineData("flop")]
    [InlineData("grayscale")]
    [InlineData("normalize")]
    [InlineData("strip")]
    public void AcceptsEveryOperationForm(string line)
    {
        var words = line.Split(' ');
        var output = Assert.Single(Operations.Parse(line));
        Assert.Equal(new Step(words[0], words.Length > 1 ? words[1] : ""), Assert.Single(output.Steps));
    }

    [Fact]
    public void ParsesNamesStepsCommentsAndBlankLines()
    {
        var outputs = Operations.Parse("""
            # one camera's outputs
            thumb: thumbnail 320x180 | format webp

            gray:autoorient|grayscale|resize 640x360   # no spaces needed
              rotate 90 | flip
            """);

        Assert.Equal(["thumb", "gray", "5"], outputs.Select(o => o.Name));
        Assert.Equal([new Step("thumbnail", "320x180"), new Step("format", "webp")], outputs[0].Steps);
        Assert.Equal([new Step("autoorient"), new Step("grayscale"), new Step("resize", "640x360")], outputs[1].Steps);
        Assert.Equal([new Step("rotate", "90"), new Step("flip")], outputs[2].Steps);
    }

    [Fact]
    public void AcceptsWindowsLineEndingsAndTheLongestName()
    {
        var name = new string('a', 64);
        var outputs = Operations.Parse($"{name}: flip\r\nb-2_C: flop\r\n");
        Assert.Equal([name, "b-2_C"], outputs.Select(o => o.Name));
    }

    [Theory]
    [InlineData("", "line 1: no operations")]
    [InlineData("# only a comment\n\n", "line 1: no operations")]
    [InlineData("flip\nrotat 90", "line 2: unknown operation 'rotat'")]
    [InlineData("Resize 10x10", "line 1: unknown operation 'Resize'")]
    [InlineData("flip | | flop", "line 1: missing operation")]
    [InlineData("thumb:", "line 1: missing operation")]
    [InlineData("flip 3", "line 1: invalid argument '3' to 'flip' (no argument)")]
    [InlineData("flip 3 4", "line 1: unexpected argument '4' to 'flip'")]
    [InlineData("resize 10x10 20x20", "line 1: unexpected argument '20x20' to 'resize'")]
    [InlineData("resize", "line 1: missing argument to 'resize' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("resize 640y360", "line 1: invalid argument '640y360' to 'resize' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("resize x", "line 1: invalid argument 'x' to 'resize' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("resize 0x10", "line 1: invalid argument '0x10' to 'resize' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("resize 10001x10", "line 1: invalid argument '10001x10' to 'resize' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("thumbnail 401%", "line 1: invalid argument '401%' to 'thumbnail' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("thumbnail 0%", "line 1: invalid argument '0%' to 'thumbnail' (W, xH or WxH, optionally ending in ! ^ > or <, or P%)")]
    [InlineData("crop 10x10+5", "line 1: invalid argument '10x10+5' to 'crop' (WxH or WxH+X+Y)")]
    [InlineData("crop 10", "line 1: invalid argument '10' to 'crop' (WxH or WxH+X+Y)")]
    [InlineData("rotate 361", "line 1: invalid argument '361' to 'rotate' (degrees from -360 to 360)")]
    [InlineData("rotate NaN", "line 1: invalid argument 'NaN' to 'rotate' (degrees from -360 to 360)")]
    [InlineData("blur -1", "line 1: invalid argument '-1' to 'blur' (a sigma from 0 to 50)")]
    [InlineData("blur 51", "line 1: invalid argument '51' to 'blur' (a sigma from 0 to 50)")]
    [InlineData("sharpen 1e9", "line 1: invalid argument '1e9' to 'sharpen' (a sigma from 0 to 5)")]
    [InlineData("sharpen 5.5", "line 1: invalid argument '5.5' to 'sharpen' (a sigma from 0 to 5)")]
    [InlineData("quality 0", "line 1: invalid argument '0' to 'quality' (a whole number from 1 to 100)")]
    [InlineData("quality 50.5", "line 1: invalid argument '50.5' to 'quality' (a whole number from 1 to 100)")]
    [InlineData("modulate 100,", "line 1: invalid argument '100,' to 'modulate' (brightness[,saturation[,hue]], each from 0 to 200)")]
    [InlineData("modulate 1,2,3,4", "line 1: invalid argument '1,2,3,4' to 'modulate' (brightness[,saturation[,hue]], each from 0 to 200)")]
    [InlineData("format bmp", "line 1: invalid argument 'bmp' to 'format' (jpeg, png, webp, gif, tiff)")]
    [InlineData("format JPEG", "line 1: invalid argument 'JPEG' to 'format' (jpeg, png, webp, gif, tiff)")]
    [InlineData("a b: flip", "line 1: invalid name 'a b'")]
    [InlineData("../x: flip", "line 1: invalid name '../x'")]
    [InlineData(": flip", "line 1: invalid name ''")]
    [InlineData("x: flip\nx: flop", "line 2: duplicate name 'x'")]
    [InlineData("2: flip\nflop", "line 2: duplicate name '2'")]
    public void RejectsMistakesNamingTheLine(string text, string message)
    {
        Assert.Equal(message, Assert.Throws<OperationsException>(() => Operations.Parse(text)).Message);
    }

    [Fact]
    public void RejectsANameLongerThan64()
    {
        var name = new string('a', 65);
        Assert.Equal($"line 1: invalid name '{name}'", Assert.Throws<OperationsException>(() => Operations.Parse($"{name}: flip")).Message);
    }

    [Fact]
    public void BoundsTheNumberOfOutputsAndSteps()
    {
        var outputs = string.Join('\n', Enumerable.Repeat("flip", Operations.MaxOutputs));
        Assert.Equal(Operations.MaxOutputs, Operations.Parse(outputs).Count);
        Assert.Equal("line 101: more than 100 outputs",
            Assert.Throws<OperationsException>(() => Operations.Parse(outputs + "\nflip")).Message);

        var steps = string.Join(" | ", Enumerable.Repeat("flip", Operations.MaxSteps));
        Assert.Equal(Operations.MaxSteps, Operations.Parse(steps)[0].Steps.Length);
        Assert.Equal("line 1: more than 20 operations",
            Assert.Throws<OperationsException>(() => Operations.Parse(steps + " | flip")).Message);
    }
}
