#!/usr/bin/env bash
# The benchmark, in one command: ./bench.sh writes its figures into BENCHMARKS.md; ./bench.sh --short (what the test
# suite runs) does one quick round into a scratch copy, only to show that every mode works; ./bench.sh camera and
# ./bench.sh scale run one mode alone (README, Benchmarks). It starts its own Postgres and RabbitMQ on other ports
# (45432, 44672) and stops them, fetches the photos and sharp, and runs bench/ (its Program.cs names the modes' files).
set -euo pipefail
cd "$(dirname "$0")"
source ./services.sh
install_missing postgresql-15 rabbitmq-server imagemagick nodejs acl # imagemagick's convert makes the photos

scratch=$(mktemp -d /tmp/imageprocessor-bench.XXXXXX)
trap 'stop_started; rm -rf "$scratch"' EXIT
report=BENCHMARKS.md
[ "${1:-}" = --short ] && report=$scratch/BENCHMARKS.md && cp BENCHMARKS.md "$report" # a copy, with its markers

# The photos: the samples, and the two largest real photos of Debian's mate-backgrounds (8.3 and 17.9 MP), plus a
# 20 MP JPEG made from the larger one; downloaded once into bench/photos. The camera mode's photos, in
# bench/photos/camera, are what a QA camera sends: 192 JPEGs of 1920x1080 (2 MP) at quality 88, 16 crops (8 places,
# each also mirrored) of each of the 12 real photos of mate-backgrounds' nature folder.
photos=bench/photos
if [ ! -f "$photos/elephants-20mp.jpg" ] || [ ! -f "$photos/camera/yellowflower-15.jpg" ]; then
  mkdir -p "$photos/camera" "$scratch/deb"
  (cd "$scratch/deb" && apt-get download mate-backgrounds 2>/dev/null && dpkg -x mate-backgrounds_*.deb .)
  cp testing/data/*/*.jpg "$photos/"
  cp "$scratch/deb/usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg" "$photos/elephants-8mp.jpg"
  convert "$scratch/deb/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg" -resize 5964x3354! -quality 92 \
    "$photos/elephants-20mp.jpg"
  for source in "$scratch"/deb/usr/share/backgrounds/mate/nature/*.jpg; do
    name=$(basename "$source" .jpg | tr '[:upper:]' '[:lower:]')
    for n in $(seq 0 15); do
      convert "$source" -resize 2112x1188^ -crop "1920x1080+$((n % 4 * 64))+$((n / 4 % 2 * 108))" +repage \
        $([ "$n" -ge 8 ] && echo -flop) -sampling-factor 2x2 -quality 88 "$photos/camera/$name-$n.jpg"
    done
  done
fi
convert -size 32x32 gradient:red-blue "$scratch/tiny.png"
(cd bench && npm ci --no-audit --no-fund --loglevel=error)
dotnet build ImageProcessor.sln -c Release -v quiet -nologo
# The services as they are deployed: published (ReadyToRun, as their project files ask), as run.sh and the images do.
for project in Api Converter Processor; do
  dotnet publish $project/$project.csproj -c Release --ucr --self-contained false -v quiet -nologo \
    -o "$scratch/services/$project"
done
dotnet build-server shutdown >/dev/null # the compilers' servers, idle but resident, leave the cores to what is measured

start_postgres "$scratch/db" 45432
start_rabbitmq "$scratch/bus" 44672
# Where the benchmark reads Postgres's and RabbitMQ's CPU (/proc): the process groups services.sh's start gave them,
# Postgres's first, then RabbitMQ's (with the Erlang port mapper's, when start_rabbitmq started one).
export SERVER_GROUPS="Postgres=${STARTED[0]} RabbitMQ=$(IFS=,; echo "${STARTED[*]:1}")"
export DATABASE="Host=127.0.0.1;Port=45432;Username=imageprocessor;Password=imageprocessor;Timeout=5;\
No Reset On Close=true;Max Auto Prepare=16"
export BUS="amqp://guest:guest@127.0.0.1:44672"
# As run.sh and the images run the services (and so the engine too): glibc keeps freed memory under 16 MiB for the next
# image instead of returning it to the kernel and faulting it in again (the engine's page faults: 326000 -> 18000).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864
# What the report names: the machine, and sharp's and libvips's versions.
memory=$(awk '/MemTotal/ { print int($2 / 2^20) }' /proc/meminfo)
export MACHINE="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores, $memory GiB, \
$(. /etc/os-release && echo "$PRETTY_NAME")"
export SHARP_VERSION=$(cd bench && node -p "const v = require('sharp').versions; \`\${v.sharp} (libvips \${v.vips})\`")
# In a process group of its own, like the servers, so that stop_started ends the services it started with it.
SERVICES=$scratch/services setsid dotnet bench/bin/Release/net10.0/Bench.dll "$photos" "$scratch" "$report" "$@" &
STARTED+=($!)
wait $!
