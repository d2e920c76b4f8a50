namespace ImageProcessor;

/// <summary>ImageMagick 7 through Magick.NET, as every service uses it (ARCHITECTURE.md): our policy, a photo's first
/// frame read as its named format, a time limit, corrupt photos failed, whole outputs, ImageMagick's reasons.</summary>
public static class Magick
{
    static readonly int TimeLimit = int.Parse(Env.Get("JOB_SECONDS", "60"));

    [ModuleInitializer] // before any code of Common runs in a service, so each is under the policy or does not start
    internal static void LoadPolicy()
    {
        var policy = Path.Combine(AppContext.BaseDirectory, "policy.xml");
        var files = ConfigurationFiles.Default;
        files.Policy.Data = File.ReadAllText(policy);
        var folder = MagickNET.Initialize(files); // ImageMagick's settings, written into a folder of ours
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(folder, recursive: true);
        // Magick.NET ignores settings given after anything of it has run, and says nothing: so what ImageMagick
        // enforces is read back (a list-length of 32 is ours alone), and the service does not start without it.
        if (ResourceLimits.ListLength != 32)
            throw new InvalidOperationException($"ImageMagick does not enforce {policy}: its list-length is not 32");
    }

    /// <summary>Reads the header of the photo's first frame (its only one, FrameCount), without its pixels.</summary>
    public static MagickImageInfo Ping(Stream photo) => new(photo, new MagickReadSettings { FrameCount = 1 });

    /// <summary>Applies the steps to the input's first frame, writes the output whole, or says why it failed.</summary>
    public static (int? Width, int? Height, string? Error) Convert(
        string input, string inputFormat, Step[] steps, string output, string format)
    {
        var temp = $"{output}.{Guid.NewGuid():N}.tmp";
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(TimeLimit)); // the job's one clock
        try
        {
            var (hint, shrunk) = ShrinkOnLoad(input, inputFormat, steps);
            using var image = new MagickImage();
            // libjpeg only warns of a photo cut short or corrupt, greying what it lacks; Magick.NET throws no warning.
            image.Warning += (_, warning) =>
            {
                if (warning.Exception is MagickCorruptImageWarningException)
                    throw warning.Exception;
            };
            var coder = Enum.Parse<MagickFormat>(inputFormat, ignoreCase: true);
            image.Read(input, new MagickReadSettings { Format = coder, FrameCount = 1, Defines = hint });
            // ImageMagick asks as it goes whether to go on (told before the read, it would ask the image it replaced).
            // A step told to stop ends as if it had finished, or with its image gone: the clock decides, not the image.
            image.Progress += (_, progress) => progress.Cancel = limit.IsCancellationRequested;
            foreach (var step in shrunk)
                Operations.Definitions[step.Op].Apply(image, step.Arg);
            // Written by .NET, whose error says why a write failed (a full NAS), naming no path.
            File.WriteAllBytes(temp, image.ToByteArray(Enum.Parse<MagickFormat>(format, ignoreCase: true)));
            limit.Token.ThrowIfCancellationRequested();
            File.Move(temp, output, overwrite: true);
            return ((int)image.Width, (int)image.Height, null);
        }
        catch (Exception) when (limit.IsCancellationRequested)
        {
            return (null, null, $"stopped at the time limit of {TimeLimit} s per job (JOB_SECONDS)");
        }
        catch (MagickException e)
        {
            return (null, null, e.Message.Replace(input, "the photo")); // ImageMagick's reason, naming no path
        }
        catch (IOException e) when (Env.IsNasFull(e))
        {
            return (null, null, "the NAS is full");
        }
        finally
        {
            File.Delete(temp); // what a failed or stopped job wrote; nothing once published
        }
    }

    // Shrink-on-load (ARCHITECTURE.md): a first resize that halves the photo decodes less, and is given its exact size.
    static (JpegReadDefines? Hint, Step[] Steps) ShrinkOnLoad(string input, string format, Step[] steps)
    {
        var at = Array.FindIndex(steps, step => step.Op is not ("autoorient" or "grayscale" or "flip" or "flop"
            or "strip")); // the first step not known to keep the size
        var resize = at < 0 ? null : steps[at];
        if (format != "jpeg" || resize?.Op is not ("resize" or "thumbnail") || resize.Arg[^1] is '<' or '!' or '^')
            return (null, steps);
        var photo = new MagickImageInfo(input);
        var (width, height) = Resized(new MagickGeometry(resize.Arg), (int)photo.Width, (int)photo.Height);
        var onItsSide = photo.Orientation >= Orientation.LeftTop; // EXIF's 5 to 8, which an autoorient would turn
        if (2 * width > photo.Width || 2 * height > photo.Height || onItsSide)
            return (null, steps);
        var exact = steps.Select((step, i) => i == at ? step with { Arg = $"{width}x{height}!" } : step);
        return (new JpegReadDefines { Size = new MagickGeometry((uint)width, (uint)height) }, [.. exact]);
    }

    // ImageMagick's size for a plain or percent resize (its ParseMetaGeometry); a side not given (0) follows the other.
    static (int Width, int Height) Resized(MagickGeometry geometry, int width, int height)
    {
        double? x = geometry.Width > 0 ? geometry.Width / (double)width : null; // the scale each side asks for
        double? y = geometry.Height > 0 ? geometry.Height / (double)height : null;
        var scale = geometry.IsPercentage ? geometry.Width / 100.0 : Math.Min(x ?? y!.Value, y ?? x!.Value);
        return (Math.Max(Round(scale * width), 1), Math.Max(Round(scale * height), 1));
    }
    static int Round(double value) => (int)Math.Floor(value + 0.5);
}
