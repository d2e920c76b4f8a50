#!/usr/bin/env bash
# Brings the whole cluster up on this machine, without Docker: Postgres and RabbitMQ on loopback with their data in
# db/data and bus/, the API, the converter and PROCESSORS processors (default 2; one per core, as each runs ImageMagick
# on one thread). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"
source ./services.sh
install_missing postgresql-15 rabbitmq-server libmagickwand-6.q16-6 curl acl

trap stop_started EXIT
trap 'exit 130' INT TERM
start_postgres "$PWD/db/data/pgdata" 5432
start_rabbitmq "$PWD/bus" 5672 15672
dotnet build ImageProcessor.sln -c Release -v quiet -nologo

export NAS=$PWD/nas
# Every endpoint but /healthz wants this key; one is made up for the session unless API_KEY is set.
export API_KEY=${API_KEY:-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')}
mkdir -p logs
start logs/api.log dotnet Api/bin/Release/net10.0/Api.dll
start logs/converter.log dotnet Converter/bin/Release/net10.0/Converter.dll
for n in $(seq "${PROCESSORS:-2}"); do
  start "logs/processor-$n.log" dotnet Processor/bin/Release/net10.0/Processor.dll
done
until curl -fsS http://localhost:8080/healthz >/dev/null 2>&1; do sleep 0.5; done

cat <<MSG
ImageProcessor is up with ${PROCESSORS:-2} processors.
  API            http://localhost:8080   (try: API_KEY=$API_KEY testing/data/test.sh)
  API key        $API_KEY                (send it as: Authorization: Bearer <key>)
  RabbitMQ UI    http://localhost:15672  (guest/guest)
  Postgres       127.0.0.1:5432          (imageprocessor/imageprocessor)
  Logs           logs/    NAS: nas/
Ctrl-C stops everything.
MSG
wait
