using System.Diagnostics;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace ImageProcessor.Tests;

/// <summary>The project's promises about itself: the line budget, the engine, and a compose file Docker would accept.</summary>
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

    // Lines a reader takes in at a glance: within 120 characters, where reading starts to scroll, and one statement each
    // (as C# parses them: a block's braces are not one, an if and the statement it guards are two).
    [Fact]
    public void EveryProductionLineIsWithin120CharactersAndHoldsOneStatement()
    {
        foreach (var file in ProductionFiles())
        {
            var text = File.ReadAllText(Path.Combine(Cluster.Root, file));
            foreach (var (line, number) in text.Split('\n').Select((line, i) => (line, i + 1)))
                Assert.True(line.Length <= 120, $"{file}:{number} is {line.Length} characters long: {line}");
            var tree = CSharpSyntaxTree.ParseText(text);
            var crowded = tree.GetRoot().DescendantNodes().OfType<StatementSyntax>().Where(s => s is not BlockSyntax)
                .GroupBy(s => s.GetLocation().GetLineSpan().StartLinePosition.Line).Where(line => line.Count() > 1);
            Assert.True(!crowded.Any(), $"{file}: more than one statement on line {string.Join(", ", crowded.Select(l => l.Key + 1))}");
        }
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
    public void ComposeFileIsValidAndWantsTheSecretsThatGuardItsPorts()
    {
        var (status, config, _) = Compose(("API_KEY", "a-key"), ("RABBITMQ_PASSWORD", "a-password"));
        Assert.Equal(0, status);
        foreach (var service in new[] { "postgres:", "rabbitmq:", "api:", "converter:", "processor:" })
            Assert.Contains(service, config);

        // Without them it refuses to start, saying what to set: no key anyone can read here guards a published port.
        var (noKey, _, why) = Compose(("RABBITMQ_PASSWORD", "a-password"));
        Assert.NotEqual(0, noKey);
        Assert.Contains("set API_KEY, the key every client sends as 'Authorization: Bearer <key>'", why);
        var (noPassword, _, whyNot) = Compose(("API_KEY", "a-key"));
        Assert.NotEqual(0, noPassword);
        Assert.Contains("set RABBITMQ_PASSWORD, the broker's password", whyNot);
    }

    // `docker-compose config` with only the given settings of the three it reads from the environment.
    static (int Status, string Output, string Errors) Compose(params (string Name, string Value)[] settings)
    {
        var start = new ProcessStartInfo("docker-compose", ["--project-directory", Cluster.Root, "-f",
            Path.Combine(Cluster.Root, "docker-compose.yaml"), "config"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var name in new[] { "API_KEY", "RABBITMQ_PASSWORD", "POSTGRES_PASSWORD" })
            start.Environment.Remove(name);
        foreach (var (name, value) in settings)
            start.Environment[name] = value;
        using var compose = Process.Start(start)!;
        var (output, errors) = (compose.StandardOutput.ReadToEndAsync(), compose.StandardError.ReadToEndAsync());
        compose.WaitForExit();
        return (compose.ExitCode, output.Result, errors.Result);
    }

    static string[] ProductionFiles() => Helpers.Run("git", "-C", Cluster.Root, "ls-files", "Api/*.cs", "Converter/*.cs", "Processor/*.cs",
        "Common/*.cs").Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
