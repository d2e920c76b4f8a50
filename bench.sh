#!/usr/bin/env bash
# The benchmark, into BENCHMARKS.md: --short (the test suite's) quickly into a copy; `camera` or `scale` one mode.
set -euo pipefail
cd "$(dirname "$0")"
source ./services.sh
install_missing postgresql-15 rabbitmq-server imagemagick nodejs acl # imagemagick's convert makes the photos
scratch=$(mktemp -d /tmp/imageprocessor-bench.XXXXXX)
trap 'stop_started; rm -rf "$scratch"' EXIT
mkdir -p "$scratch/nas/photos" "$scratch/nas/outputs"
report=BENCHMARKS.md
[ "${1:-}" = --short ] && report=$scratch/BENCHMARKS.md && cp BENCHMARKS.md "$report"
# The photos, made once: the samples, mate-backgrounds' two largest (8.3 MP; 17.9 MP enlarged to 20 MP), and for the
# camera mode 192 JPEGs of 1920x1080 at quality 88, 16 crops (8 places, each also mirrored) of its 12 nature photos.
photos=bench/photos
mate=$scratch/deb/usr/share/backgrounds/mate
if [ ! -f "$photos/elephants-20mp.jpg" ] || [ ! -f "$photos/camera/yellowflower-15.jpg" ]; then
  mkdir -p "$photos/camera" "$scratch/deb"
  (cd "$scratch/deb" && apt-get download mate-backgrounds 2>/dev/null && dpkg -x mate-backgrounds_*.deb .)
  cp testing/data/*/*.jpg "$photos/"
  cp "$mate/abstract/Elephants_3840x2160.jpg" "$photos/elephants-8mp.jpg"
  convert "$mate/abstract/Elephants_5640x3172.jpg" -resize 5964x3354! -quality 92 "$photos/elephants-20mp.jpg"
  for source in "$mate"/nature/*.jpg; do
    name=$(basename "${source,,}" .jpg)
    for n in $(seq 0 15); do
      convert "$source" -resize 2112x1188^ -crop "1920x1080+$((n % 4 * 64))+$((n / 4 % 2 * 108))" +repage \
        $([ "$n" -ge 8 ] && echo -flop) -sampling-factor 2x2 -quality 88 "$photos/camera/$name-$n.jpg"
    done
  done
fi
convert -size 32x32 gradient:red-blue "$scratch/tiny.png"
(cd bench && npm ci --no-audit --no-fund --loglevel=error)
dotnet build ImageProcessor.sln -c Release -v quiet -nologo
for project in Api Converter Processor; do # published ReadyToRun, as run.sh and the images deploy them
  dotnet publish $project -c Release --ucr --self-contained false -v quiet -nologo -o "$scratch/services/$project"
done
dotnet build-server shutdown >/dev/null # idle but resident, the compilers' servers would take memory from the runs
start_postgres "$scratch/db" 45432
start_rabbitmq "$scratch/bus" 44672
export SERVER_GROUPS="Postgres=${STARTED[0]} RabbitMQ=$(IFS=,; echo "${STARTED[*]:1}")"
export DATABASE="Host=127.0.0.1;Port=45432;Username=imageprocessor;Password=imageprocessor;Timeout=5;\
No Reset On Close=true;Max Auto Prepare=16"
export BUS="amqp://guest:guest@127.0.0.1:44672"
# As run.sh runs the services (and so the engine): freed memory kept for the next image (page faults: 326000 -> 18000).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864
sharp=$(cd bench && node -p "const v = require('sharp').versions; \`\${v.sharp} (libvips \${v.vips})\`")
export ON="$(date -u '+%F %R') UTC by \`./bench.sh${*:+ $*}\` on $(grep -m1 -oP 'model name\s*: \K.*' /proc/cpuinfo), \
$(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), sharp $sharp"
# In a process group of its own, like the servers, so that stop_started ends the services it started with it.
setsid dotnet bench/bin/Release/net10.0/Bench.dll "$photos" "$scratch" "$report" "$@" &
STARTED+=($!)
wait $!
