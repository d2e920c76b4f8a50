# One image per service, from this one file: compose passes PROJECT (Api, Converter or Processor).
# Build stage: the SDK publishes the service self-contained for linux-x64, so the runtime stage needs no .NET image.
# The project files come first and are restored alone, a layer that a change of code reuses; only Common and the
# service are copied, so a change anywhere else (another service, a document) leaves this image as it was.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG PROJECT
WORKDIR /src
COPY Directory.Build.props ./
COPY Common/Common.csproj Common/
COPY $PROJECT/$PROJECT.csproj $PROJECT/
RUN dotnet restore $PROJECT/$PROJECT.csproj -r linux-x64 -p:SelfContained=true -p:PublishReadyToRun=true
COPY Common/ Common/
COPY $PROJECT/ $PROJECT/
# The service's program is /app/service, whichever it is, so that one entry point serves all three.
RUN dotnet publish $PROJECT/$PROJECT.csproj -c Release -r linux-x64 --self-contained --no-restore -o /app \
    && ln -s $PROJECT /app/service

# Runtime stage: Debian 12 and the one library the program loads that it lacks: OpenSSL, which .NET's cryptography
# needs for Npgsql's SCRAM authentication. ImageMagick comes with the program (Magick.NET's Magick.Native for
# linux-x64, which needs only glibc): no ImageMagick package, tools or delegates' programs.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 && rm -rf /var/lib/apt/lists/*
ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
# glibc keeps freed memory under 16 MiB for the next image instead of returning it and faulting it in again.
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864
COPY --from=build /app /app
WORKDIR /app
# Not root: compose runs it as the user who runs compose (UID and GID, README), so what it writes in ./nas is theirs.
USER 1000:1000
ENTRYPOINT ["/app/service"]
