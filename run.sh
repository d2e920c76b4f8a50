#!/usr/bin/env bash
# Brings the whole cluster up on this machine, without Docker: Postgres and RabbitMQ on loopback with their data in
# db/data and bus/, the API, the converter and PROCESSORS processors (default 2; one per core, as each runs ImageMagick
# on one thread). Ctrl-C stops everything it started. API_PORT, POSTGRES_PORT, RABBITMQ_PORT and MANAGEMENT_PORT move
# it off the usual ports, so that two clones can run side by side.
set -euo pipefail
cd "$(dirname "$0")"
source ./services.sh
install_missing postgresql-15 rabbitmq-server curl acl
API_PORT=${API_PORT:-8080} POSTGRES_PORT=${POSTGRES_PORT:-5432} RABBITMQ_PORT=${RABBITMQ_PORT:-5672}
MANAGEMENT_PORT=${MANAGEMENT_PORT:-15672}

trap stop_started EXIT
trap 'exit 130' INT TERM
require_free_port "$API_PORT" "the API"
# Room for every service's pool (README): the API's 40, the converter's 4 and 2 a processor, and a few to spare.
start_postgres "$PWD/db/data/pgdata" "$POSTGRES_PORT" $((100 + 2 * ${PROCESSORS:-2}))
start_rabbitmq "$PWD/bus" "$RABBITMQ_PORT" "$MANAGEMENT_PORT"
# Published as the images are: precompiled for this machine (ReadyToRun, see Directory.Build.props), so that a fresh
# process does its first jobs at full speed instead of compiling its code meanwhile.
for project in Api Converter Processor; do
  dotnet publish $project/$project.csproj -c Release --ucr --self-contained false -v quiet -nologo -o $project/bin/publish
done

# Set here rather than left to the services' defaults, which name the usual ports.
# glibc keeps freed memory under 16 MiB for the next image instead of returning it and faulting it in again (BENCHMARKS.md).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864
export NAS=$PWD/nas ASPNETCORE_URLS=http://localhost:$API_PORT BUS=amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT
export DATABASE="Host=127.0.0.1;Port=$POSTGRES_PORT;Username=imageprocessor;Password=imageprocessor;Timeout=5;No Reset On Close=true;Max Auto Prepare=16"
# Every endpoint but /healthz wants this key; one is made up for the session unless API_KEY is set.
export API_KEY=${API_KEY:-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')}
mkdir -p logs nas/photos nas/outputs # the NAS's set-up: the services never make its folders (README)
start logs/api.log dotnet Api/bin/publish/Api.dll
start logs/converter.log dotnet Converter/bin/publish/Converter.dll
for n in $(seq "${PROCESSORS:-2}"); do
  start "logs/processor-$n.log" dotnet Processor/bin/publish/Processor.dll
done
until curl -fsS "http://localhost:$API_PORT/healthz" >/dev/null 2>&1; do sleep 0.5; done

cat <<MSG
ImageProcessor is up with ${PROCESSORS:-2} processors.
  Status page    http://localhost:$API_PORT/#key=$API_KEY  (the key after # stays in the browser)
  API            http://localhost:$API_PORT  (try: API=http://localhost:$API_PORT API_KEY=$API_KEY testing/data/test.sh)
  API key        $API_KEY  (send it as: Authorization: Bearer <key>)
  RabbitMQ UI    http://localhost:$MANAGEMENT_PORT  (guest/guest)
  Postgres       127.0.0.1:$POSTGRES_PORT  (imageprocessor/imageprocessor)
  Logs           logs/    NAS: nas/
Ctrl-C stops everything.
MSG
wait
