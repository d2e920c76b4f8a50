namespace ImageProcessor;

/// <summary>README's operations language. Each mistake is an OperationsException: "line N: what is wrong".</summary>
public static class Operations
{
    public const int MaxOutputs = 100, MaxSteps = 20;
    public static readonly string[] Formats = ["jpeg", "png", "webp", "gif", "tiff"];
    public static readonly Regex Name = new("^[A-Za-z0-9_-]{1,64}$");
    // Sides of 1 to 10000 pixels and scales of 1% to 400% bound every output's size.
    const string Side = "(?:[1-9][0-9]{0,3}|10000)", Scale = "(?:[1-9][0-9]?|[1-3][0-9][0-9]|400)";
    static readonly Regex Geometry = new($"^(?:{Side}x?|{Side}?x{Side})[!^<>]?$|^{Scale}%$");
    static readonly Regex Crop = new($@"^{Side}x{Side}(?:[+-]\d{{1,6}}[+-]\d{{1,6}})?$");
    const string GeometryUsage = "W, xH or WxH, optionally ending in ! ^ > or <, or P%";

    /// <summary>An operation: how its argument is written and checked, and what it does to an image.</summary>
    public sealed record Definition(string Usage, Func<string, bool> IsValid, Action<MagickImage, string> Apply);

    /// <summary>README's table, each operation applied by ImageMagick's option of its name.</summary>
    public static readonly Dictionary<string, Definition> Definitions = new()
    {
        ["autoorient"] = NoArgument(image => image.AutoOrient()),
        ["flip"] = NoArgument(image => image.Flip()),
        ["flop"] = NoArgument(image => image.Flop()),
        ["grayscale"] = NoArgument(image => image.ColorSpace = ColorSpace.Gray),
        ["normalize"] = NoArgument(image => image.Normalize()),
        ["strip"] = NoArgument(image => image.Strip()),
        ["resize"] = new(GeometryUsage, Geometry.IsMatch, (image, arg) => image.Resize(new MagickGeometry(arg))),
        ["thumbnail"] = new(GeometryUsage, Geometry.IsMatch, (image, arg) => image.Thumbnail(new MagickGeometry(arg))),
        ["crop"] = new("WxH or WxH+X+Y", Crop.IsMatch, (image, arg) =>
        {
            image.Crop(new MagickGeometry(arg), arg.IndexOfAny(['+', '-']) < 0 ? Gravity.Center : Gravity.Undefined);
            image.ResetPage();
        }),
        ["rotate"] = new("degrees from -360 to 360", Between(-360, 360), (image, arg) => image.Rotate(Number(arg))),
        // Sigmas bound by sane use, as cost grows with their square (sharpen 5: 4.5 s on 4 MP); radius 0 is automatic.
        ["blur"] = new("a sigma from 0 to 50", Between(0, 50), (image, arg) => image.Blur(0, Number(arg))),
        ["sharpen"] = new("a sigma from 0 to 5", Between(0, 5), (image, arg) => image.Sharpen(0, Number(arg))),
        ["quality"] = new("a whole number from 1 to 100", arg => int.TryParse(arg, out var q) && q is >= 1 and <= 100,
            (image, arg) => image.Quality = uint.Parse(arg)),
        ["modulate"] = new("brightness[,saturation[,hue]], each from 0 to 200", IsModulation,
            (image, arg) => Modulate(image, [.. arg.Split(',').Select(Number), 100, 100])), // 100: unchanged
        ["format"] = new(string.Join(", ", Formats), Formats.Contains, (_, _) => { }), // names the output file instead
    };

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
        var op = words.FirstOrDefault() ?? throw Error(line, "missing operation");
        var operation = Definitions.GetValueOrDefault(op) ?? throw Error(line, $"unknown operation '{op}'");
        if (words.Length > 2)
            throw Error(line, $"unexpected argument '{words[2]}' to '{op}'");
        var arg = words.ElementAtOrDefault(1) ?? "";
        var mistake = arg == "" ? "missing argument to" : $"invalid argument '{arg}' to";
        return operation.IsValid(arg) ? new Step(op, arg) : throw Error(line, $"{mistake} '{op}' ({operation.Usage})");
    }

    static OperationsException Error(int line, string message) => new($"line {line}: {message}");
    static Definition NoArgument(Action<MagickImage> apply) => new("no argument", arg => arg == "", (i, _) => apply(i));
    static Func<string, bool> Between(double min, double max) => arg =>
        double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max;
    static double Number(string arg) => double.Parse(arg, NumberStyles.Float, CultureInfo.InvariantCulture);
    static bool IsModulation(string arg) => arg.Split(',') is { Length: <= 3 } parts && parts.All(Between(0, 200));
    static void Modulate(MagickImage image, double[] p) => image.Modulate(new(p[0]), new(p[1]), new(p[2])); // percents
}

// One line of an operations file is an output image, made by steps: operations with their argument ("" for none).
public sealed record Output(string Name, Step[] Steps);
public sealed record Step(string Op, string Arg = "");
public sealed class OperationsException(string message) : Exception(message);
