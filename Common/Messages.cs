namespace ImageProcessor;

// What travels on the bus is only an id: the row in Postgres holds the rest, so a message cannot disagree with it.

/// <summary>A conversion was recorded and waits to be expanded into jobs (queue "conversions").</summary>
public sealed record ConversionMessage(long ConversionId);

/// <summary>A job was recorded and waits for a processor (queue "jobs").</summary>
public sealed record JobMessage(long JobId);
