// The peer, sharp (libvips), run as Bench.ChildAsync runs the engine: node peer.js PHOTOS ROUNDS WORKERS OUT OP,...
import { readdirSync } from 'fs';
import sharp from 'sharp';
const [photos, rounds, workers, out, names] = process.argv.slice(2);
sharp.concurrency(1); // one thread per image: the workers are the parallelism, as with ImageMagick's thread limit 1
sharp.cache(false); // every image is read afresh, as a processor reads each job's photo
const halfWidth = async (file) => Math.round((await sharp(file).metadata()).autoOrient.width / 2);
const operations = { // MainAsync's; an output without a format of its own is written in its photo's
  resize: async (file) => sharp(file).resize(640, 360, { fit: 'inside' }),
  thumb: async (file) => sharp(file).resize(320, 180, { fit: 'inside' }).webp(),
  gray: async (file) => sharp(file).rotate().grayscale().resize(await halfWidth(file)),
};
const files = readdirSync(photos).filter((file) => file.endsWith('.jpg')).sort().map((file) => `${photos}/${file}`);
const tasks = Array(Number(rounds)).fill(files).flat().flatMap((file) => names.split(',').map((name) => [name, file]));
const queue = tasks.entries(); // one iterator for all the workers: each takes the next image as it finishes one
const ms = [];
const cpu = process.cpuUsage();
const start = performance.now();
await Promise.all(Array.from({ length: Number(workers) }, async () => {
  for (const [i, [name, file]] of queue) {
    const began = performance.now();
    await (await operations[name](file)).toFile(`${out}/${i}`);
    ms.push(performance.now() - began);
  }
}));
const { user, system } = process.cpuUsage(cpu);
const result = { Seconds: (performance.now() - start) / 1000, Ms: ms, CpuSeconds: (user + system) / 1e6 };
console.log(JSON.stringify({ ...result, PeakKb: process.resourceUsage().maxRSS }));
