namespace ImageProcessor;

/// <summary>ImageMagick 7 through Magick.NET, as every service reads and writes images: under our policy, the first
/// frame of a photo whose format is named, a time limit per job, outputs written whole or not at all, and ImageMagick's
/// own reason in every failure. Ping throws it (a MagickException); Convert returns it.</summary>
public static class Magick
{
    static readonly int TimeLimit = int.Parse(Env.Get("JOB_SECONDS", "60"));

    [ModuleInitializer] // before any code of Common runs in a service, so each is under the policy or does not start
    internal static void LoadPolicy()
    {
        // Our policy.xml refuses all coders but the five formats, all delegates and @file reads, caps memory, size,
        // frames, threads. Magick.NET writes it and ImageMagick's other settings into a folder of ours, gone at exit.
        var (files, policy) = (ConfigurationFiles.Default, Path.Combine(AppContext.BaseDirectory, "policy.xml"));
        files.Policy.Data = File.ReadAllText(policy);
        var folder = MagickNET.Initialize(files);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(folder, recursive: true);
        // Magick.NET ignores settings given after anything of it has run, and says nothing: so what ImageMagick
        // enforces is read back (a list-length of 32 is ours alone), and the service does not start without it.
        if (ResourceLimits.ListLength != 32)
            throw new InvalidOperationException($"ImageMagick does not enforce {policy}: its list-length is not 32");
    }

    /// <summary>Reads only the header of the first frame, without its pixels; Captured and Camera come from its EXIF.</summary>
    public static Header Ping(string path)
    {
        using var image = new MagickImage();
        image.Ping(path, new MagickReadSettings { FrameIndex = 0, FrameCount = 1 });
        return ((int)image.Width, (int)image.Height, image.Format.ToString().ToLowerInvariant(), image.Orientation.ToString(),
            DateTime.TryParseExact(image.GetAttribute("exif:DateTimeOriginal"), "yyyy:MM:dd HH:mm:ss", CultureInfo.InvariantCulture,
                DateTimeStyles.AllowWhiteSpaces, out var captured) ? captured : null,
            image.GetAttribute("exif:Model")?.Trim() is { Length: > 0 } camera ? camera : null);
    }

    /// <summary>Applies the steps to the first frame of input, whose format is named so that its content cannot choose
    /// another coder, and writes output atomically: whole or not at all. Returns the output's size, or why it failed.</summary>
    public static (int? Width, int? Height, string? Error) Convert(string input, string inputFormat, Step[] steps, string output, string format)
    {
        var (temp, deadline) = ($"{output}.{Guid.NewGuid():N}.tmp", TickCount64 + TimeLimit * 1000L);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        try
        {
            var (hint, shrunk) = ShrinkOnLoad(input, inputFormat, steps);
            using var image = new MagickImage(input, new MagickReadSettings
                { Format = Enum.Parse<MagickFormat>(inputFormat, ignoreCase: true), FrameIndex = 0, FrameCount = 1, Defines = hint });
            // ImageMagick asks as it goes whether to go on (told before the read, it would ask the image it replaces).
            // A step told to stop ends as if it had finished, or with its image gone: past the deadline, it stopped.
            image.Progress += (_, progress) => progress.Cancel = TickCount64 >= deadline;
            foreach (var step in shrunk)
                Operations.Apply(image, step);
            image.Write(temp, Enum.Parse<MagickFormat>(format, ignoreCase: true));
            File.Move(temp, TickCount64 < deadline ? output : throw new TimeoutException(), overwrite: true);
            return ((int)image.Width, (int)image.Height, null);
        }
        catch (Exception e) when (e is MagickException || TickCount64 >= deadline)
        {
            return (null, null, TickCount64 < deadline ? e.Message : $"stopped at the time limit of {TimeLimit} s per job (JOB_SECONDS)");
        }
        finally
        {
            File.Delete(temp); // what a failed or stopped job wrote; nothing once published
        }
    }

    // libjpeg decodes at 1/2, 1/4, 1/8... of the size when told the size wanted (jpeg:size; above the photo's it enlarges):
    // a first resize that halves the photo or more never decodes the pixels it drops, and is told the exact size it would
    // have made of the whole. A photo on its side is decoded whole, as an autoorient before the resize would turn it.
    static (JpegReadDefines? Hint, Step[] Steps) ShrinkOnLoad(string input, string format, Step[] steps)
    {
        var at = Array.FindIndex(steps, step => step.Op is not ("autoorient" or "grayscale" or "flip" or "flop" or "strip"));
        if (format != "jpeg" || at < 0 || steps[at] is not { Op: "resize" or "thumbnail" } resize || resize.Arg.EndsWith('<'))
            return (null, steps); // (only enlarging, <, never halves)
        var (width, height, _, orientation, _, _) = Ping(input);
        var (w, h) = Resized(new MagickGeometry(resize.Arg), width, height);
        return 2 * w > width || 2 * h > height || orientation is "LeftTop" or "RightTop" or "RightBottom" or "LeftBottom"
            ? (null, steps) : (new JpegReadDefines { Size = new MagickGeometry((uint)w, (uint)h) },
                [.. steps[..at], resize with { Arg = $"{w}x{h}!" }, .. steps[(at + 1)..]]);
    }

    // The size ImageMagick's resize makes of an image (its ParseMetaGeometry, not in Magick.NET), a side not given
    // being 0: P%; exact (!) with that side kept; fitted, or filling (^) with it as the other; > as a plain one.
    static (int Width, int Height) Resized(MagickGeometry geometry, int width, int height)
    {
        var (w, h) = (geometry.Width / (double)width, geometry.Height / (double)height); // the scale each side asks for
        if (!geometry.IsPercentage && !geometry.IgnoreAspectRatio)
            w = h = geometry.FillArea ? Math.Max(w == 0 ? geometry.Height / (double)width : w, h == 0 ? geometry.Width / (double)height : h)
                : Math.Min(w == 0 ? h : w, h == 0 ? w : h);
        return geometry.IsPercentage ? (Round(geometry.Width / 100.0 * width), Round(geometry.Height / 100.0 * height))
            : (Math.Max(Round((w == 0 ? 1 : w) * width), 1), Math.Max(Round((h == 0 ? 1 : h) * height), 1));
    }
    static int Round(double value) => (int)Math.Floor(value + 0.5);
}
