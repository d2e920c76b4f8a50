// The peer: the benchmark's operations done with sharp (libvips), which is what a user would pick instead of
// ImageMagick. Like the engine's child (Program.cs) it keeps one image a worker in hand and prints one JSON line:
// {"Seconds": wall clock, "Ms": [one per image], "PeakKb": its peak resident memory, "CpuSeconds": its CPU time}.
// Usage: node peer.js PHOTOS ROUNDS WORKERS OUT OPERATION,... (with UV_THREADPOOL_SIZE=WORKERS, as Bench.cs sets it).
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

const [photos, rounds, workers, out, names] = process.argv.slice(2);
sharp.concurrency(1); // one thread per image: the workers are the parallelism, as with ImageMagick's thread limit 1
sharp.cache(false); // every image is read afresh, as a processor reads each job's photo
// The operations of Main.cs as sharp writes them; an output keeps its photo's format unless told otherwise.
const operations = {
  resize: (file) => sharp(file).resize(640, 360, { fit: 'inside' }),
  thumb: (file) => sharp(file).resize(320, 180, { fit: 'inside' }).webp(),
  gray: async (file) => {
    const { width } = (await sharp(file).metadata()).autoOrient;
    return sharp(file).rotate().grayscale().resize(Math.round(width / 2));
  },
};
const files = fs.readdirSync(photos).filter((file) => fs.statSync(path.join(photos, file)).isFile()).sort();
const tasks = Array.from({ length: Number(rounds) }, () => files).flat()
  .flatMap((file) => names.split(',').map((name) => ({ file: path.join(photos, file), name })));

(async () => {
  const [ms, start, cpu] = [[], process.hrtime.bigint(), process.cpuUsage()];
  let next = 0;
  await Promise.all(Array.from({ length: Number(workers) }, async () => {
    for (let i = next++; i < tasks.length; i = next++) {
      const began = process.hrtime.bigint();
      const type = tasks[i].name === 'thumb' ? 'webp' : path.extname(tasks[i].file).slice(1);
      await (await operations[tasks[i].name](tasks[i].file)).toFile(path.join(out, `${i}.${type}`));
      ms.push(Number(process.hrtime.bigint() - began) / 1e6);
    }
  }));
  const [seconds, { user, system }] = [Number(process.hrtime.bigint() - start) / 1e9, process.cpuUsage(cpu)];
  const peakKb = process.resourceUsage().maxRSS;
  console.log(JSON.stringify({ Seconds: seconds, Ms: ms, PeakKb: peakKb, CpuSeconds: (user + system) / 1e6 }));
})();
