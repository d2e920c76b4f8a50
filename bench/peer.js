// The peer: the benchmark's three operations done with sharp (libvips), which is what a user would pick instead of
// ImageMagick. Like the engine mode of Program.cs it keeps one worker per core busy and prints one JSON line:
// {"Seconds": wall clock, "Ms": [one per image], "PeakKb": this process's peak resident memory, "CpuSeconds": the CPU
// time this process used meanwhile}.
// Usage: node peer.js PHOTOS_DIR ROUNDS WORKERS OUT_DIR [OPERATION,...] (with UV_THREADPOOL_SIZE=WORKERS, as Program.cs
// sets it); OPERATION names those below, all of them by default (the camera mode runs resize alone).
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

const [photos, rounds, workers, out, only] = process.argv.slice(2);
sharp.concurrency(1); // one thread per image: the workers are the parallelism, as with ImageMagick's thread limit 1
sharp.cache(false); // every image is read afresh, as a processor reads each job's photo

// The operations of Program.cs, each as sharp writes it; the output keeps the photo's format unless told otherwise.
const operations = {
  resize: async (file) => sharp(file).resize(640, 360, { fit: 'inside' }),
  thumb: async (file) => sharp(file).resize(320, 180, { fit: 'inside' }).webp(),
  gray: async (file) => {
    const { autoOrient } = await sharp(file).metadata();
    return sharp(file).rotate().grayscale().resize(Math.round(autoOrient.width / 2));
  },
};

const tasks = [];
for (let round = 0; round < Number(rounds); round++)
  for (const photo of fs.readdirSync(photos).filter((file) => fs.statSync(path.join(photos, file)).isFile()).sort())
    for (const name of only ? only.split(',') : Object.keys(operations))
      tasks.push({ photo: path.join(photos, photo), name, output: path.join(out, `${tasks.length}.${name === 'thumb' ? 'webp' : path.extname(photo).slice(1)}`) });

(async () => {
  const ms = [];
  const [start, cpu] = [process.hrtime.bigint(), process.cpuUsage()];
  let next = 0;
  await Promise.all(Array.from({ length: Number(workers) }, async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      const began = process.hrtime.bigint();
      await (await operations[task.name](task.photo)).toFile(task.output);
      ms.push(Number(process.hrtime.bigint() - began) / 1e6);
    }
  }));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const { user, system } = process.cpuUsage(cpu);
  console.log(JSON.stringify({ Seconds: seconds, Ms: ms, PeakKb: process.resourceUsage().maxRSS, CpuSeconds: (user + system) / 1e6 }));
})();
