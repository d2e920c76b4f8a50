using System.Globalization;
using System.Text.RegularExpressions;

namespace ImageProcessor;

/// <summary>
/// An operations file: one output image per non-blank line, `#` starts a comment.
///
///     [name:] op [arg] | op [arg] | ...
///
/// The name (1-64 letters, digits, '-', '_') defaults to the line number. Steps apply left to right:
///     resize, thumbnail GEOMETRY     W, xH, WxH, optionally ending in ! ^ > or <; or P%
///     crop WxH[+X+Y]                 without an offset the crop is centred
///     rotate DEGREES   blur SIGMA   sharpen SIGMA   quality 1-100   modulate B[,S[,H]]
///     format jpeg|png|webp|gif|tiff  autoorient flip flop grayscale normalize strip
/// Every mistake raises OperationsException with one message form: "line 2: unknown operation 'rotat'".
/// </summary>
public static partial class Operations
{
    public const int MaxOutputs = 100, MaxSteps = 20, MaxSide = 10000, MaxPercent = 400;
    public static readonly string[] Formats = ["jpeg", "png", "webp", "gif", "tiff"];
    const string GeometryUsage = "W, xH or WxH, optionally ending in ! ^ > or <, or P%";

    // Each operation's argument: how it is described to the user, and how it is checked (null: takes none).
    static readonly Dictionary<string, (string Usage, Func<string, bool>? IsValid)> Arguments = new()
    {
        ["resize"] = (GeometryUsage, IsGeometry),
        ["thumbnail"] = (GeometryUsage, IsGeometry),
        ["crop"] = ("WxH or WxH+X+Y", arg => Crop().Match(arg) is { Success: true } m && AreSides(m)),
        ["rotate"] = ("degrees from -360 to 360", arg => IsNumber(arg, -360, 360)),
        ["blur"] = ("a sigma from 0 to 100", arg => IsNumber(arg, 0, 100)),
        ["sharpen"] = ("a sigma from 0 to 100", arg => IsNumber(arg, 0, 100)),
        ["quality"] = ("a whole number from 1 to 100", arg => int.TryParse(arg, out var q) && q is >= 1 and <= 100),
        ["modulate"] = ("brightness[,saturation[,hue]], each from 0 to 200",
            arg => arg.Split(',') is { Length: <= 3 } parts && parts.All(p => IsNumber(p, 0, 200))),
        ["format"] = (string.Join(", ", Formats), Formats.Contains),
        ["autoorient"] = ("", null), ["flip"] = ("", null), ["flop"] = ("", null),
        ["grayscale"] = ("", null), ["normalize"] = ("", null), ["strip"] = ("", null),
    };

    public static List<Output> Parse(string text)
    {
        var outputs = new List<Output>();
        var lines = text.Split('\n');
        for (var number = 1; number <= lines.Length; number++)
        {
            var line = lines[number - 1].Split('#')[0];
            if (string.IsNullOrWhiteSpace(line))
                continue;
            if (outputs.Count == MaxOutputs)
                throw Error(number, $"more than {MaxOutputs} outputs");
            var colon = line.IndexOf(':');
            var name = colon < 0 ? $"{number}" : line[..colon].Trim();
            if (!IsName(name))
                throw Error(number, $"invalid name '{name}'");
            if (outputs.Any(o => o.Name == name))
                throw Error(number, $"duplicate name '{name}'");
            var steps = line[(colon + 1)..].Split('|');
            if (steps.Length > MaxSteps)
                throw Error(number, $"more than {MaxSteps} operations");
            outputs.Add(new Output(name, [.. steps.Select(step => ParseStep(number, step))]));
        }
        return outputs.Count > 0 ? outputs : throw Error(1, "no operations");
    }

    public static bool IsName(string name) => Name().IsMatch(name);

    static Step ParseStep(int number, string step)
    {
        var words = step.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
            throw Error(number, "missing operation");
        var op = words[0];
        if (!Arguments.TryGetValue(op, out var argument))
            throw Error(number, $"unknown operation '{op}'");
        var expected = argument.IsValid is null ? 1 : 2;
        if (words.Length > expected)
            throw Error(number, $"unexpected argument '{words[expected]}' to '{op}'");
        if (argument.IsValid is null)
            return new Step(op);
        if (words.Length < expected)
            throw Error(number, $"missing argument to '{op}' ({argument.Usage})");
        if (!argument.IsValid(words[1]))
            throw Error(number, $"invalid argument '{words[1]}' to '{op}' ({argument.Usage})");
        return new Step(op, words[1]);
    }

    static OperationsException Error(int line, string message) => new($"line {line}: {message}");

    static bool IsGeometry(string arg) => Geometry().Match(arg) is { Success: true } m &&
        (m.Groups["p"].Success ? int.Parse(m.Groups["p"].Value) is >= 1 and <= MaxPercent
            : (m.Groups["w"].Success || m.Groups["h"].Success) && AreSides(m));

    static bool AreSides(Match m) => new[] { m.Groups["w"], m.Groups["h"] }
        .All(side => !side.Success || int.Parse(side.Value) is >= 1 and <= MaxSide);

    static bool IsNumber(string arg, double min, double max) =>
        double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max;

    [GeneratedRegex(@"^(?:(?<w>\d{1,6})?(?:x(?<h>\d{1,6})?)?[!^<>]?|(?<p>\d{1,4})%)$")]
    private static partial Regex Geometry();

    [GeneratedRegex(@"^(?<w>\d{1,6})x(?<h>\d{1,6})(?:[+-]\d{1,6}[+-]\d{1,6})?$")]
    private static partial Regex Crop();

    [GeneratedRegex(@"^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex Name();
}

/// <summary>One operation and its argument ("" when it takes none), as ImageMagick will apply it.</summary>
public sealed record Step(string Op, string Arg = "");

/// <summary>One line of an operations file: the name of the output image and the steps that make it.</summary>
public sealed record Output(string Name, Step[] Steps);

public sealed class OperationsException(string message) : Exception(message);
