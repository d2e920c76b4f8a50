namespace ImageProcessor;

/// <summary>README's operations language. Every mistake is an OperationsException: "line 2: unknown operation 'rotat'".</summary>
public static class Operations
{
    public const int MaxOutputs = 100, MaxSteps = 20;
    public static readonly string[] Formats = ["jpeg", "png", "webp", "gif", "tiff"];
    const string Geometry = "W, xH or WxH, optionally ending in ! ^ > or <, or P%";
    public static readonly Regex Name = new("^[A-Za-z0-9_-]{1,64}$");
    static readonly Regex Sides = new(@"^(?<w>\d{1,6})?(?:x(?<h>\d{1,6})?)?[!^<>]?$|^(?<p>\d{1,4})%$");
    static readonly Regex Crop = new(@"^(?<w>\d{1,6})x(?<h>\d{1,6})(?:[+-]\d{1,6}[+-]\d{1,6})?$");

    // Each operation as README's table gives it: how its argument is written and checked, and what it does to the
    // image: the Magick.NET call that is ImageMagick's option of the same name (the table's last column).
    static readonly Dictionary<string, Definition> Definitions = new()
    {
        ["autoorient"] = NoArgument(image => image.AutoOrient()),
        ["flip"] = NoArgument(image => image.Flip()),
        ["flop"] = NoArgument(image => image.Flop()),
        ["grayscale"] = NoArgument(image => image.ColorSpace = ColorSpace.Gray),
        ["normalize"] = NoArgument(image => image.Normalize()),
        ["strip"] = NoArgument(image => image.Strip()),
        ["resize"] = (Geometry, IsGeometry, (image, arg) => image.Resize(new MagickGeometry(arg))),
        ["thumbnail"] = (Geometry, IsGeometry, (image, arg) => image.Thumbnail(new MagickGeometry(arg))),
        ["crop"] = ("WxH or WxH+X+Y", arg => Crop.Match(arg) is { Success: true } m && AreSides(m), (image, arg) =>
        {
            image.Crop(new MagickGeometry(arg), arg.IndexOfAny(['+', '-']) < 0 ? Gravity.Center : Gravity.Undefined);
            image.ResetPage();
        }),
        ["rotate"] = ("degrees from -360 to 360", arg => IsNumber(arg, -360, 360), (image, arg) => image.Rotate(Number(arg))),
        // Bounded by what sane use needs: sharpen's cost grows with sigma squared (5: 4.5 s on 4 MP), blur's with it.
        // Radius 0: ImageMagick picks one to suit sigma.
        ["blur"] = ("a sigma from 0 to 50", arg => IsNumber(arg, 0, 50), (image, arg) => image.Blur(0, Number(arg))),
        ["sharpen"] = ("a sigma from 0 to 5", arg => IsNumber(arg, 0, 5), (image, arg) => image.Sharpen(0, Number(arg))),
        ["quality"] = ("a whole number from 1 to 100", arg => int.TryParse(arg, out var q) && q is >= 1 and <= 100,
            (image, arg) => image.Quality = uint.Parse(arg)),
        ["modulate"] = ("brightness[,saturation[,hue]], each from 0 to 200", arg => arg.Split(',') is { Length: <= 3 } parts
            && parts.All(part => IsNumber(part, 0, 200)), (image, arg) => Modulate(image, [.. arg.Split(',').Select(Number), 100, 100])),
        ["format"] = (string.Join(", ", Formats), Formats.Contains, (_, _) => { }), // names the output file instead
    };

    /// <summary>Does to the image what a parsed step stands for.</summary>
    public static void Apply(MagickImage image, Step step) => Definitions[step.Op].Apply(image, step.Arg);

    public static List<Output> Parse(string text)
    {
        var outputs = new List<Output>();
        var lines = text.Split('\n').Select((line, index) => (Text: line.Split('#')[0], Number: index + 1));
        foreach (var (line, number) in lines.Where(line => !string.IsNullOrWhiteSpace(line.Text)))
        {
            if (outputs.Count == MaxOutputs)
                throw Error(number, $"more than {MaxOutputs} outputs");
            var colon = line.IndexOf(':');
            var name = colon < 0 ? $"{number}" : line[..colon].Trim();
            if (!Name.IsMatch(name))
                throw Error(number, $"invalid name '{name}'");
            if (outputs.Any(output => output.Name == name))
                throw Error(number, $"duplicate name '{name}'");
            var steps = line[(colon + 1)..].Split('|');
            if (steps.Length > MaxSteps)
                throw Error(number, $"more than {MaxSteps} operations");
            outputs.Add(new Output(name, [.. steps.Select(step => ParseStep(number, step))]));
        }
        return outputs.Count > 0 ? outputs : throw Error(1, "no operations");
    }

    static Step ParseStep(int line, string step)
    {
        var words = step.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
            throw Error(line, "missing operation");
        var (op, arg) = (words[0], words.ElementAtOrDefault(1) ?? "");
        if (!Definitions.TryGetValue(op, out var argument))
            throw Error(line, $"unknown operation '{op}'");
        if (words.Length > 2)
            throw Error(line, $"unexpected argument '{words[2]}' to '{op}'");
        return argument.IsValid(arg) ? new Step(op, arg) : throw Error(line, arg == "" ? $"missing argument to '{op}' ({argument.Usage})"
            : $"invalid argument '{arg}' to '{op}' ({argument.Usage})");
    }

    static OperationsException Error(int line, string message) => new($"line {line}: {message}");
    static Definition NoArgument(Action<MagickImage> apply) => ("no argument", arg => arg == "", (i, _) => apply(i));
    static void Modulate(MagickImage image, double[] p) => image.Modulate(new(p[0]), new(p[1]), new(p[2])); // percents
    // Sides up to 10000 pixels and scales up to 400% bound the size of every output.
    static bool IsGeometry(string arg) => Sides.Match(arg) is { Success: true } m && (m.Groups["p"].Success
        ? int.Parse(m.Groups["p"].Value) is >= 1 and <= 400
        : (m.Groups["w"].Success || m.Groups["h"].Success) && AreSides(m));
    static bool AreSides(Match m) =>
        new[] { m.Groups["w"], m.Groups["h"] }.All(side => !side.Success || int.Parse(side.Value) is >= 1 and <= 10000);
    static bool IsNumber(string arg, double min, double max) =>
        double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max;
    static double Number(string arg) => double.Parse(arg, NumberStyles.Float, CultureInfo.InvariantCulture);
}

// One line of an operations file is an output image, made by steps: operations with their argument ("" for none).
public sealed record Output(string Name, Step[] Steps);
public sealed record Step(string Op, string Arg = "");
public sealed class OperationsException(string message) : Exception(message);
