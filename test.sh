#!/usr/bin/env bash
# The test command: starts real Postgres and RabbitMQ in a scratch folder, runs the whole xunit suite against them
# (the suite itself starts the API, the converter and the processors), runs the benchmark's short mode, and stops
# what it started.
set -euo pipefail
cd "$(dirname "$0")"
source ./services.sh
install_missing postgresql-15 rabbitmq-server imagemagick docker-compose curl acl chromium

scratch=$(mktemp -d /tmp/imageprocessor-test.XXXXXX)
trap 'stop_started; rm -rf "$scratch"' EXIT
start_postgres "$scratch/db" 35432 300 # the suite's clusters, its second APIs and its own pools at once
start_rabbitmq "$scratch/bus" 35672

export DATABASE="Host=127.0.0.1;Port=35432;Username=imageprocessor;Password=imageprocessor;Timeout=5;No Reset On Close=true;Max Auto Prepare=16"
export BUS="amqp://guest:guest@127.0.0.1:35672"
# Where the fault tests find the servers they stop and start (with postgres_ctl and rabbitmq_ctl of services.sh).
export TEST_POSTGRES="$scratch/db 35432" TEST_RABBITMQ="$scratch/bus 35672"
export TMPDIR="$scratch/tmp" # the suite's own scratch files (the cluster's NAS and logs) go when the scratch folder goes
mkdir -p "$TMPDIR"
set +o pipefail # the suite's own status decides, below
dotnet test ImageProcessor.sln --logger "console;verbosity=normal" "$@" | tee "$scratch/test.log"
status=${PIPESTATUS[0]}
# The benchmark in its short mode, only to show that every mode still runs: no figure is checked.
if ! ./bench.sh --short >"$scratch/bench.log" 2>&1; then
  tail -n 30 "$scratch/bench.log"
  echo "./bench.sh --short failed"
  status=1
fi
# The closing line CI reads: "N passed, N failed".
count() { sed -n "s/^ *$1: *\([0-9]*\)\$/\1/p" "$scratch/test.log" | tail -n 1; }
passed=$(count Passed) failed=$(count Failed)
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
