// npm run bench -- --only=uploads [--large] [--size=<MiB>]   (bench/index.ts lists every flag)
//
// Push and pull throughput of one large blob against `wrangler dev`, next to a bare Worker that only does
// R2.put(key, request.body) and R2.get(key) in the same local runtime (bench/r2-baseline/); it also stores the blob as
// a multipart object, because reading one costs far more in local R2 than reading a single object. Each push is timed from
// its first request to its last response; peak RSS is the largest sum of the VmRSS of the workerd processes in
// wrangler's process group, sampled every 50 ms during that push; CPU is the workerd processes' user+system time.
// Prints a markdown table. 1 GiB by default, 5 GiB (less 5 MiB) with --large, --size=<MiB> for a quick run.
import { cpus, loadavg } from "node:os";
import { startRegistry } from "../test/e2e/harness.ts";
import { digestOfStream, pull, pushChunked, pushMonolithic, pushStreamed, send } from "../test/support/blob-transfer.ts";
import { randomBytesStream } from "../test/support/oci-layout.ts";
import { PeakRss, workerdUsage } from "./process-usage.ts";
import { startReferenceWorker } from "./reference-worker.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const args = process.argv.slice(2);
const sizeArg = args.find((arg) => arg.startsWith("--size="));
// --large: 5 GiB less 5 MiB, R2's largest single put (the bare put and the monolithic push are single puts).
const SIZE = sizeArg ? Number(sizeArg.slice("--size=".length)) * MiB : args.includes("--large") ? 5 * GiB - 5 * MiB : GiB;
const CHUNK = 64 * MiB;
// The registry's default UPLOAD_PART_BYTES, used for the bare multipart reference too.
const PART = 16 * MiB;

interface Measurement {
  name: string;
  seconds: number;
  peakRssBytes: number;
  cpuSeconds: number;
}

async function measure(name: string, pgid: number, work: () => Promise<unknown>): Promise<Measurement> {
  const before = workerdUsage(pgid);
  const rss = new PeakRss(() => workerdUsage(pgid));
  const started = performance.now();
  try {
    await work();
  } finally {
    rss.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  const measurement = { name, seconds, peakRssBytes: rss.peakBytes, cpuSeconds: workerdUsage(pgid).cpuSeconds - before.cpuSeconds };
  console.error(`${name}: ${(SIZE / 1e6 / seconds).toFixed(0)} MB/s, peak RSS ${(rss.peakBytes / MiB).toFixed(0)} MiB`);
  return measurement;
}

const data = (seed: string) => randomBytesStream(`bench ${seed}`, SIZE, 1 * MiB);

function check(what: string, got: { digest: string; size: number }, want: { digest: string; size: number }): void {
  if (got.digest !== want.digest || got.size !== want.size) {
    throw new Error(`${what}: got ${got.digest} (${got.size} bytes), expected ${want.digest} (${want.size} bytes)`);
  }
}

interface Baseline {
  put: Measurement;
  get: Measurement;
  multipartPut: Measurement;
  multipartGet: Measurement;
  /** The hops of a streamed push, each alone (bench/r2-baseline/index.ts). */
  hops: Measurement[];
}

async function benchBaseline(): Promise<Baseline> {
  const baseline = await startReferenceWorker("r2-baseline");
  try {
    const want = await digestOfStream(data("baseline"));
    const put = await measure("bare R2.put", baseline.pgid, async () => {
      const reply = await send(`${baseline.url}/blob`, "PUT", { "Content-Length": String(SIZE) }, data("baseline"));
      if (reply.status !== 201) throw new Error(`bare put: ${reply.status}`);
    });
    const get = await measure("bare R2.get", baseline.pgid, async () => check("bare get", await pull(`${baseline.url}/blob`), want));
    const multipartPut = await measure(`bare multipart put (${PART / MiB} MiB parts)`, baseline.pgid, async () => {
      const reply = await send(`${baseline.url}/parts?partBytes=${PART}`, "PUT", { "Content-Length": String(SIZE) }, data("baseline"));
      if (reply.status !== 201) throw new Error(`bare multipart put: ${reply.status}`);
    });
    const multipartGet = await measure("bare R2.get of that multipart object", baseline.pgid, async () =>
      check("bare multipart get", await pull(`${baseline.url}/parts`), want),
    );
    // Each hop with the body streamed as the registry's streamed PATCH is (chunked, no Content-Length).
    const hop = (name: string, path: string) =>
      measure(name, baseline.pgid, async () => {
        const reply = await send(`${baseline.url}/hop/${path}`, "PUT", {}, data("baseline"));
        if (reply.status !== 201) throw new Error(`${name}: ${reply.status}`);
      });
    const hops = [
      await hop("hop: client → Worker, body read and dropped", "drain"),
      await hop("hop: client → Worker, body hashed (JavaScript SHA-256) and dropped", "hash"),
      await hop("hop: client → Worker, body hashed (native DigestStream) and dropped", "native-hash"),
      await hop("hop: client → Worker → Durable Object, body dropped there", "do-drain"),
      await hop(`hop: client → Worker → Durable Object → R2 multipart (${PART / MiB} MiB parts)`, `do-parts?partBytes=${PART}`),
    ];
    return { put, get, multipartPut, multipartGet, hops };
  } finally {
    await baseline.stop();
  }
}

async function benchRegistry(): Promise<Measurement[]> {
  const registry = await startRegistry({ vars: { MAX_BODY_BYTES: String(SIZE) } });
  try {
    const repository = "bench/blobs";
    const blobUrl = (digest: string) => `${registry.url}/v2/${repository}/blobs/${digest}`;

    const monolithic = await digestOfStream(data("monolithic"));
    const pushMono = await measure("push monolithic (POST ?digest=)", registry.pgid, async () =>
      check("monolithic", await pushMonolithic(registry.url, repository, data("monolithic"), SIZE, monolithic.digest), monolithic),
    );
    let chunked = { digest: "", size: 0 };
    const pushChunks = await measure(`push chunked (${CHUNK / MiB} MiB PATCHes)`, registry.pgid, async () => {
      chunked = await pushChunked(registry.url, repository, data("chunked"), SIZE, CHUNK);
    });
    let streamed = { digest: "", size: 0 };
    const pushStream = await measure("push one streamed PATCH", registry.pgid, async () => {
      streamed = await pushStreamed(registry.url, repository, data("streamed"));
    });
    const pullMono = await measure("pull (GET, blob pushed whole)", registry.pgid, async () =>
      check("pull monolithic", await pull(blobUrl(monolithic.digest)), monolithic),
    );
    const pullParts = await measure("pull (GET, blob assembled from parts)", registry.pgid, async () =>
      check("pull chunked", await pull(blobUrl(chunked.digest)), chunked),
    );
    check("pull streamed", await pull(blobUrl(streamed.digest)), streamed);
    return [pushMono, pushChunks, pushStream, pullMono, pullParts];
  } catch (error) {
    console.error(registry.output().slice(-4000));
    throw error;
  } finally {
    await registry.stop();
  }
}

function row(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

export async function benchUploads(): Promise<void> {
  const started = Date.now();
  console.error(`blob: ${SIZE / MiB} MiB; ${cpus().length} cores; node ${process.version}`);
  const baseline = await benchBaseline();
  const registry = await benchRegistry();
  const mbps = (m: Measurement) => SIZE / 1e6 / m.seconds;
  const mib = (bytes: number) => (bytes / MiB).toFixed(0);
  // Issue 18's references: a push of known length against the bare put, a streamed or chunked push against the bare
  // multipart put (a stream of unknown length cannot be one put); a pull against the bare get of an object of the
  // same shape (single or multipart). Time ratios: lower is better.
  const referenceOf = (m: Measurement): { reference: Measurement; goal: number } =>
    m.name.startsWith("pull")
      ? { reference: m.name.includes("parts") ? baseline.multipartGet : baseline.get, goal: 1.1 }
      : { reference: m.name.includes("monolithic") ? baseline.put : baseline.multipartPut, goal: 1.2 };

  const lines = [
    `Blob ${SIZE / MiB} MiB, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} at the end, wrangler dev (local R2, D1, Durable Objects)`,
    "",
    row(["measurement", "MB/s", "time (s)", "time / reference", "reference", "target", "met?", "peak workerd RSS (MiB)", "workerd CPU (s)"]),
    row(["---", "---:", "---:", "---:", "---", "---", "---", "---:", "---:"]),
  ];
  const cells = (m: Measurement) => [mbps(m).toFixed(0), m.seconds.toFixed(2)];
  const usage = (m: Measurement) => [mib(m.peakRssBytes), m.cpuSeconds.toFixed(1)];
  for (const m of [baseline.put, baseline.get, baseline.multipartPut, baseline.multipartGet]) {
    lines.push(row([m.name, ...cells(m), "", "", "", "", ...usage(m)]));
  }
  for (const m of baseline.hops) {
    lines.push(row([m.name, ...cells(m), (m.seconds / baseline.multipartPut.seconds).toFixed(2), "bare multipart put", "", "", ...usage(m)]));
  }
  for (const m of registry) {
    const { reference, goal } = referenceOf(m);
    const ratio = m.seconds / reference.seconds;
    lines.push(row([m.name, ...cells(m), ratio.toFixed(2), reference.name, `≤ ${goal}`, ratio <= goal ? "yes" : "**no**", ...usage(m)]));
  }
  console.log(lines.join("\n"));
  console.error(`bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}
