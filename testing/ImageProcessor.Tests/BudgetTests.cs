namespace ImageProcessor.Tests;

/// <summary>The project's promises about itself: the line budget and a compose file Docker would accept.</summary>
public sealed class BudgetTests
{
    [Fact]
    public void ProductionCodeStaysUnder500Lines()
    {
        var files = ProductionFiles();
        Assert.NotEmpty(files);

        // Counted as `wc -l` counts: newline characters.
        var lines = files.Sum(file => File.ReadAllText(Path.Combine(Cluster.Root, file)).Count(c => c == '\n'));
        Assert.True(lines < 500, $"production C# is {lines} lines; the budget is under 500");
    }

    // ImageMagick is Magick.NET's, which brings its own library: no service binds one of the system's by hand.
    [Fact]
    public void TheEngineIsMagickNetAndNoNativeBindingOfOurOwn()
    {
        Assert.All(ProductionFiles(), file => Assert.DoesNotContain("DllImport", File.ReadAllText(Path.Combine(Cluster.Root, file))));
        Assert.Contains("<PackageReference Include=\"Magick.NET-Q8-AnyCPU\" Version=\"15.1.0\" />",
            File.ReadAllText(Path.Combine(Cluster.Root, "Common", "Common.csproj")));
    }

    [Fact]
    public void ComposeFileIsValid()
    {
        var config = Helpers.Run("docker-compose", "--project-directory", Cluster.Root, "-f", Path.Combine(Cluster.Root, "docker-compose.yaml"), "config");

        foreach (var service in new[] { "postgres:", "rabbitmq:", "api:", "converter:", "processor:" })
            Assert.Contains(service, config);
    }

    static string[] ProductionFiles() => Helpers.Run("git", "-C", Cluster.Root, "ls-files", "Api/*.cs", "Converter/*.cs", "Processor/*.cs",
        "Common/*.cs").Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
