// The registry under `wrangler dev` against CNCF Distribution (Debian's docker-registry 2.8, filesystem storage on
// loopback), measured in the same run and interleaved figure by figure, so that both see the same background load:
// - skopeo push and pull of a single-layer image (300 MiB of random data) and of a 3 × 1 MiB image, built by the
//   bench in an OCI layout. Each push once (pushing the same blobs again would be a no-op), each pull `--pulls` times
//   into a fresh layout, reported as the median, and the first pull apart: it fills the registry's edge cache (blobs
//   up to EDGE_CACHE_MAX_BYTES, 32 MiB: the 1 MiB layers, not the 300 MiB one).
// - manifest GET and HEAD by tag and by digest with autocannon: 16 connections for `--duration` seconds each, after a
//   one-second warm-up; requests/s, and p50 and p99 of the latencies of every response.
// - CPU time per manifest request: user+system time, from /proc, of the workerd process that runs the Worker (not
//   wrangler's proxy in front of it, which production does not have; shown apart), or of docker-registry, over each
//   autocannon run, divided by the responses. Peak RSS (all workerd processes of wrangler's group, which hold local
//   D1 and R2 too) sampled every 50 ms over the whole comparison.
// - the same manifest GET against a Worker that returns a constant body (bench/constant-worker/) under the same
//   `wrangler dev`: the floor of the local runtime, to tell the registry's own cost from the runtime's.
// wrangler runs with WRANGLER_LOG=warn: its per-request log line would otherwise cost its Node process about as much
// CPU as the request itself, on the same cores. Without docker-registry (and no --install-reference) only the
// registry is measured, without ratios.
import autocannon from "autocannon";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { delimiter, join } from "node:path";
import { startRegistry } from "../test/e2e/harness.ts";
import { mustRun, runCommand } from "../test/support/command.ts";
import { startDistribution } from "../test/support/distribution.ts";
import { buildImage, MediaTypes, type BuiltImage } from "../test/support/oci-layout.ts";
import { childPids, PeakRss, usageOf, workerdUsage, wranglerWorkerd, type Usage } from "./process-usage.ts";
import { startReferenceWorker } from "./reference-worker.ts";

const MiB = 1024 * 1024;

export interface CompareOptions {
  /** apt-get docker-registry when it is missing */
  installReference: boolean;
  /** seconds of each autocannon run */
  durationSeconds: number;
  /** random content of the single-layer image, in bytes */
  bigLayerBytes: number;
  /** pulls of each image from each registry */
  pulls: number;
}

export function compareOptions(args: string[]): CompareOptions {
  const number = (name: string, fallback: number) => {
    const arg = args.find((a) => a.startsWith(`--${name}=`));
    const value = arg === undefined ? fallback : Number(arg.slice(name.length + 3));
    if (!(value > 0)) throw new Error(`--${name} must be a positive number`);
    return value;
  };
  return {
    installReference: args.includes("--install-reference"),
    durationSeconds: number("duration", 10),
    bigLayerBytes: number("image", 300) * MiB,
    pulls: Math.max(2, Math.round(number("pulls", 3))),
  };
}

interface Target {
  name: string;
  /** 127.0.0.1:<port> */
  host: string;
  /** Every process of the target (for RSS). */
  usage(): Usage;
  /** The processes that serve requests, by pid: the Worker's workerd, or docker-registry. */
  servers(): number[];
  /** wrangler's proxy workerd, when there is one. */
  proxies(): number[];
  /** What the registry printed lately, shown when a step fails. */
  output?(): string;
  stop(): Promise<void>;
}

const onPath = (command: string) => (process.env.PATH ?? "").split(delimiter).some((dir) => existsSync(join(dir, command)));

/** Whether docker-registry can run, installing Debian's package first when asked to. */
async function referenceAvailable(install: boolean): Promise<boolean> {
  if (onPath("docker-registry")) return true;
  if (!install) {
    console.error(
      "docker-registry (CNCF Distribution) is not installed: measuring the registry alone, without ratios (`npm run bench -- --install-reference` installs it)",
    );
    return false;
  }
  const apt = (...args: string[]) => {
    const line = process.getuid?.() === 0 ? ["apt-get", ...args] : ["sudo", "apt-get", ...args];
    return runCommand(line[0]!, line.slice(1), { timeoutMs: 600_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  };
  console.error("installing docker-registry with apt-get");
  let installed = await apt("install", "-y", "docker-registry");
  if (installed.code !== 0) {
    await apt("update");
    installed = await apt("install", "-y", "docker-registry");
  }
  if (installed.code !== 0) throw new Error(`${installed.line} exited with ${installed.code}:\n${installed.stderr}`);
  return onPath("docker-registry");
}

function wranglerTarget(name: string, running: { host: string; pgid: number; output?(): string; stop(): Promise<void> }): Target {
  return {
    name,
    host: running.host,
    usage: () => workerdUsage(running.pgid),
    servers: () => wranglerWorkerd(running.pgid, running.host).worker,
    proxies: () => wranglerWorkerd(running.pgid, running.host).proxy,
    ...(running.output && { output: running.output }),
    stop: running.stop,
  };
}

async function startOurs(): Promise<Target> {
  // skopeo sends a layer in one request: allow the big one (Cloudflare's plans cap a body at 100-500 MB).
  return wranglerTarget("registry", await startRegistry({ vars: { MAX_BODY_BYTES: String(1024 * MiB) } }));
}

async function startReference(): Promise<Target> {
  const before = new Set(childPids("docker-registry"));
  const distribution = await startDistribution();
  const pids = childPids("docker-registry").filter((pid) => !before.has(pid));
  if (pids.length !== 1) throw new Error(`expected one new docker-registry process, found ${pids.length}`);
  return { name: "Distribution", host: distribution.host, usage: () => usageOf(pids), servers: () => pids, proxies: () => [], stop: distribution.stop };
}

function skopeo(work: string, ...args: string[]) {
  return mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 600_000 });
}

async function seconds(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

interface Load {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of the serving process per response */
  cpuMsPerRequest: number;
  /** CPU of wrangler's proxy per response (0 without one) */
  proxyCpuMsPerRequest: number;
  responses: number;
  non2xx: number;
  errors: number;
}

/**
 * A HEAD answer carries the Content-Length of the GET, and autocannon's HTTP parser (http-parser-js) would wait for
 * that body. Its client installs the parser's callbacks after calling setupClient, so the headers-complete one is
 * wrapped as it is set, to return 1: "skip the body".
 */
function skipBodies(client: autocannon.Client): void {
  const parser = (client as unknown as { parser: object }).parser;
  const kOnHeadersComplete = 2; // HTTPParser.kOnHeadersComplete
  let onHeadersComplete: (...args: unknown[]) => unknown = () => undefined;
  Object.defineProperty(parser, kOnHeadersComplete, {
    set: (callback: typeof onHeadersComplete) => (onHeadersComplete = callback),
    get: () => (...args: unknown[]) => {
      onHeadersComplete(...args);
      return 1;
    },
  });
}

function cannon(url: string, method: "GET" | "HEAD", durationSeconds: number, onResponse?: (ms: number) => void): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        method,
        connections: 16,
        duration: durationSeconds,
        headers: { Accept: MediaTypes.manifest },
        ...(method === "HEAD" && { setupClient: skipBodies }),
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
    if (onResponse) instance.on("response", (_client, _status, _bytes, ms) => onResponse(ms));
  });
}

const samePids = (a: number[], b: number[]) => a.length === b.length && a.every((pid, i) => pid === b[i]);

/** One load run; run again (up to twice) if wrangler reloaded the Worker meanwhile, which resets its CPU counters. */
async function load(target: Target, path: string, method: "GET" | "HEAD", durationSeconds: number): Promise<Load> {
  const url = `http://${target.host}${path}`;
  for (let attempt = 1; ; attempt++) {
    await cannon(url, method, 1);
    const latencies: number[] = [];
    const servers = target.servers();
    const proxies = target.proxies();
    const before = { server: usageOf(servers), proxy: usageOf(proxies) };
    const result = await cannon(url, method, durationSeconds, (ms) => latencies.push(ms));
    const after = { server: usageOf(servers), proxy: usageOf(proxies) };
    if (!samePids(servers, target.servers()) && attempt < 3) {
      console.error(`${target.name} was reloaded during the run (its sources changed): measuring again`);
      continue;
    }
    latencies.sort((a, b) => a - b);
    const responses = latencies.length;
    const msPerResponse = (seconds: number) => (seconds * 1000) / responses;
    return {
      requestsPerSecond: responses / result.duration,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      cpuMsPerRequest: msPerResponse(after.server.cpuSeconds - before.server.cpuSeconds),
      proxyCpuMsPerRequest: msPerResponse(after.proxy.cpuSeconds - before.proxy.cpuSeconds),
      responses,
      non2xx: result.non2xx,
      errors: result.errors,
    };
  }
}

/** The manifest a registry serves under the tag is the one pushed, in its OCI media type. */
async function checkManifest(target: Target, repository: string, image: BuiltImage): Promise<void> {
  const response = await fetch(`http://${target.host}/v2/${repository}/manifests/v1`, { headers: { Accept: MediaTypes.manifest } });
  const body = Buffer.from(await response.arrayBuffer());
  const digest = response.headers.get("Docker-Content-Digest");
  if (response.status !== 200 || digest !== image.manifest.digest || !body.equals(image.manifestBytes)) {
    throw new Error(`${target.name}: GET ${repository}:v1 answered ${response.status}, ${digest}, not the pushed manifest ${image.manifest.digest}`);
  }
}

type Goal = { ratioAtMost: number } | { ratioAtLeast: number } | { below: number; unit: string };

interface Figure {
  name: string;
  ours: number;
  reference?: number;
  digits: number;
  goal?: Goal;
}

const format = (value: number | undefined, digits: number) => (value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits));

function verdict(goal: Goal | undefined, ours: number, ratio: number | undefined): { target: string; met: string } {
  if (goal === undefined) return { target: "", met: "" };
  const answer = (ok: boolean | undefined) => (ok === undefined ? "–" : ok ? "yes" : "**no**");
  if ("ratioAtMost" in goal) return { target: `ratio ≤ ${goal.ratioAtMost}`, met: answer(ratio === undefined ? undefined : ratio <= goal.ratioAtMost) };
  if ("ratioAtLeast" in goal) return { target: `ratio ≥ ${goal.ratioAtLeast}`, met: answer(ratio === undefined ? undefined : ratio >= goal.ratioAtLeast) };
  return { target: `< ${goal.below} ${goal.unit}`, met: answer(ours < goal.below) };
}

function tableOf(figures: Figure[]): string {
  const lines = ["| figure | registry | Distribution | ratio | target | met? |", "| --- | ---: | ---: | ---: | --- | --- |"];
  for (const figure of figures) {
    const ratio = figure.reference === undefined ? undefined : figure.ours / figure.reference;
    const { target, met } = verdict(figure.goal, figure.ours, ratio);
    lines.push(`| ${figure.name} | ${format(figure.ours, figure.digits)} | ${format(figure.reference, figure.digits)} | ${format(ratio, 2)} | ${target} | ${met} |`);
  }
  return lines.join("\n");
}

async function version(command: string, args: string[]): Promise<string> {
  const result = await runCommand(command, args).catch(() => undefined);
  return result?.code === 0 ? result.stdout.toString().trim().split("\n")[0]! : `${command} not found`;
}

export async function benchAgainstDistribution(options: CompareOptions): Promise<void> {
  if (!onPath("skopeo")) throw new Error("skopeo is needed for the push and pull figures (apt-get install skopeo)");
  const withReference = await referenceAvailable(options.installReference);
  const work = await mkdtemp(join(tmpdir(), "oci-bench-compare-"));
  const wranglerLog = process.env.WRANGLER_LOG;
  process.env.WRANGLER_LOG = "warn";
  const targets: Target[] = [];
  const peaks: PeakRss[] = [];
  const started = Date.now();
  const loadBefore = loadavg()[0]!;
  try {
    const bigMiB = options.bigLayerBytes / MiB;
    console.error(`building the images: one ${bigMiB} MiB layer, and 3 × 1 MiB`);
    const images = {
      big: { dir: join(work, "big"), image: await buildImage(join(work, "big"), { layers: [options.bigLayerBytes], tag: "v1", seed: "bench big" }) },
      small: { dir: join(work, "small"), image: await buildImage(join(work, "small"), { layers: [MiB, MiB, MiB], tag: "v1", seed: "bench small" }) },
    };

    const ours = await startOurs();
    targets.push(ours);
    const reference = withReference ? await startReference() : undefined;
    if (reference) targets.push(reference);
    const floor = wranglerTarget("constant Worker", await startReferenceWorker("constant-worker"));
    targets.push(floor);
    peaks.push(new PeakRss(ours.usage), ...(reference ? [new PeakRss(reference.usage)] : []));
    /** Runs `measure` on the registry, then on Distribution; returns both results. */
    const both = async <T>(measure: (target: Target) => Promise<T>): Promise<[T, T | undefined]> => [
      await measure(ours),
      reference ? await measure(reference) : undefined,
    ];

    const push = (name: keyof typeof images) =>
      both(async (target) => {
        const took = await seconds(() =>
          skopeo(work, "copy", "--retry-times", "0", "--dest-tls-verify=false", `oci:${images[name].dir}:v1`, `docker://${target.host}/bench/${name}:v1`),
        );
        console.error(`push ${name} to ${target.name}: ${took.toFixed(2)} s`);
        return took;
      });
    const pull = (name: keyof typeof images, round: number) =>
      both(async (target) => {
        const into = join(work, `pull-${target.name}-${name}-${round}`);
        const took = await seconds(() =>
          skopeo(work, "copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${target.host}/bench/${name}:v1`, `oci:${into}:v1`),
        );
        await rm(into, { recursive: true, force: true });
        console.error(`pull ${name} from ${target.name} (#${round + 1}): ${took.toFixed(2)} s`);
        return took;
      });

    const pushes = { big: await push("big"), small: await push("small") };
    for (const target of reference ? [ours, reference] : [ours]) {
      await checkManifest(target, "bench/big", images.big.image);
      await checkManifest(target, "bench/small", images.small.image);
    }
    const pulls: Record<keyof typeof images, [number, number | undefined][]> = { big: [], small: [] };
    for (let round = 0; round < options.pulls; round++) {
      pulls.big.push(await pull("big", round));
      pulls.small.push(await pull("small", round));
    }

    const digest = images.small.image.manifest.digest;
    const requests = [
      { name: "GET by tag", method: "GET", path: "/v2/bench/small/manifests/v1" },
      { name: "GET by digest", method: "GET", path: `/v2/bench/small/manifests/${digest}` },
      { name: "HEAD by tag", method: "HEAD", path: "/v2/bench/small/manifests/v1" },
      { name: "HEAD by digest", method: "HEAD", path: `/v2/bench/small/manifests/${digest}` },
    ] as const;
    const report = (what: string, target: Target, result: Load) =>
      console.error(
        `${what} on ${target.name}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ` +
          `CPU/request ${result.cpuMsPerRequest.toFixed(3)} ms (+ proxy ${result.proxyCpuMsPerRequest.toFixed(3)} ms), ${result.non2xx} non-2xx, ${result.errors} errors`,
      );
    const loads: { name: string; results: [Load, Load | undefined] }[] = [];
    for (const request of requests) {
      const results = await both(async (target) => {
        const result = await load(target, request.path, request.method, options.durationSeconds);
        report(request.name, target, result);
        return result;
      });
      loads.push({ name: request.name, results });
    }
    const floorLoad = await load(floor, "/", "GET", options.durationSeconds);
    report("GET", floor, floorLoad);
    const floorD1Load = await load(floor, "/d1", "GET", options.durationSeconds);
    report("GET /d1", floor, floorD1Load);
    const peakRss = peaks.map((peak) => peak.stop());

    const column = (rows: [number, number | undefined][], index: 0 | 1) => rows.map((row) => row[index]).filter((v): v is number => v !== undefined);
    const figures: Figure[] = [];
    for (const name of ["big", "small"] as const) {
      const label = name === "big" ? `${bigMiB} MiB layer` : "3 × 1 MiB layers";
      figures.push({ name: `skopeo push, ${label} (s)`, ours: pushes[name][0], reference: pushes[name][1], digits: 2 });
      figures.push({
        name: `skopeo pull, ${label} (s, median of ${options.pulls})`,
        ours: median(column(pulls[name], 0)),
        reference: reference ? median(column(pulls[name], 1)) : undefined,
        digits: 2,
        goal: { ratioAtMost: 1.2 },
      });
      figures.push({ name: `skopeo pull, ${label} (s, first pull)`, ours: pulls[name][0]![0], reference: pulls[name][0]![1], digits: 2 });
    }
    const loadFigures = (name: string, mine: Load, theirs: Load | undefined, withGoals = true) => {
      const isGet = withGoals && name.includes("GET");
      const cached = withGoals && name.endsWith("GET by digest");
      figures.push({ name: `${name}: requests/s`, ours: mine.requestsPerSecond, reference: theirs?.requestsPerSecond, digits: 0, ...(isGet && { goal: { ratioAtLeast: 0.8 } }) });
      figures.push({ name: `${name}: p50 (ms)`, ours: mine.p50Ms, reference: theirs?.p50Ms, digits: 2 });
      figures.push({ name: `${name}: p99 (ms)`, ours: mine.p99Ms, reference: theirs?.p99Ms, digits: 2 });
      figures.push({
        name: `${name}: CPU per request (ms)${cached ? ", edge cache hit" : ""}`,
        ours: mine.cpuMsPerRequest,
        reference: theirs?.cpuMsPerRequest,
        digits: 3,
        ...(cached && { goal: { below: 0.5, unit: "ms" } }),
      });
    };
    for (const { name, results } of loads) loadFigures(`manifest ${name}`, ...results);
    const byDigest = loads.find((entry) => entry.name === "GET by digest")!.results;
    figures.push({ name: "manifest GET by digest: CPU per request of wrangler's proxy (ms, dev only)", ours: byDigest[0].proxyCpuMsPerRequest, digits: 3 });
    loadFigures("constant Worker (wrangler dev floor) GET", floorLoad, byDigest[1], false);
    figures.push({ name: "peak RSS (MiB)", ours: peakRss[0]! / MiB, reference: peakRss[1] === undefined ? undefined : peakRss[1] / MiB, digits: 0 });

    const failures = [...loads.map(({ name, results }) => ({ name, results: results as (Load | undefined)[] })), { name: "constant Worker GET", results: [floorLoad] }, { name: "constant Worker GET /d1", results: [floorD1Load] }].flatMap(
      ({ name, results }) =>
        results.flatMap((result, i) =>
          result && (result.non2xx > 0 || result.errors > 0) ? [`${name} on ${i === 0 ? "the registry" : "Distribution"}: ${result.non2xx} non-2xx, ${result.errors} errors`] : [],
        ),
    );
    const machine = `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 1024 / MiB)} GiB`;
    const tools = [
      `node ${process.version}`,
      await version("skopeo", ["--version"]),
      withReference ? await version("docker-registry", ["--version"]) : "docker-registry not installed",
    ];
    // Issue 18's target: manifest GET and HEAD at 0.9 of the runtime's floor (the constant Worker), same run.
    // Every manifest request reads D1 once (bench/RESULTS.md, cost table), so the same Worker reading one row from
    // local D1 is shown too: the floor of a request that asks D1, which miniflare runs in the same process.
    const floorLines = [
      "| manifest request | registry requests/s | constant Worker requests/s | ratio | target | met? | constant Worker + 1 D1 read, requests/s | ratio to it | registry CPU ms / request | constant Worker CPU ms / request | + 1 D1 read, CPU ms / request |",
      "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
      ...loads.map(({ name, results: [mine] }) => {
        const ratio = mine.requestsPerSecond / floorLoad.requestsPerSecond;
        const toD1 = mine.requestsPerSecond / floorD1Load.requestsPerSecond;
        return (
          `| ${name} | ${mine.requestsPerSecond.toFixed(0)} | ${floorLoad.requestsPerSecond.toFixed(0)} | ${ratio.toFixed(2)} | ≥ 0.9 | ${ratio >= 0.9 ? "yes" : "**no**"} | ` +
          `${floorD1Load.requestsPerSecond.toFixed(0)} | ${toD1.toFixed(2)} | ${mine.cpuMsPerRequest.toFixed(3)} | ${floorLoad.cpuMsPerRequest.toFixed(3)} | ${floorD1Load.cpuMsPerRequest.toFixed(3)} |`
        );
      }),
    ];
    console.log(
      [
        `Registry (wrangler dev) against CNCF Distribution, ${new Date().toISOString().slice(0, 10)}, ${machine}; ${tools.join("; ")}; ` +
          `load average ${loadBefore.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}; ${options.durationSeconds} s per manifest run at 16 connections. ` +
          "Ratio = registry / Distribution (times: lower is better; requests/s: higher is better). " +
          "The constant Worker's row compares it with Distribution's GET by digest.",
        "",
        tableOf(figures),
        "",
        failures.length === 0 ? "Every manifest request was answered 2xx, without errors." : `Failed requests: ${failures.join("; ")}`,
        "",
        "Against the platform's floor, a Worker that answers a constant body under the same `wrangler dev`:",
        "",
        ...floorLines,
      ].join("\n"),
    );
    console.error(`comparison took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } catch (error) {
    for (const target of targets) if (target.output) console.error(`--- ${target.name}: wrangler's output (tail) ---\n${target.output().slice(-4000)}`);
    throw error;
  } finally {
    for (const peak of peaks) peak.stop();
    for (const target of targets) await target.stop().catch((error: unknown) => console.error(`stopping ${target.name}: ${error}`));
    await rm(work, { recursive: true, force: true });
    if (wranglerLog === undefined) delete process.env.WRANGLER_LOG;
    else process.env.WRANGLER_LOG = wranglerLog;
  }
}
