import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configOf, type Env } from "../../src/config";
import { collectGarbage } from "../../src/gc/run";
import { flush as flushMirrorStats } from "../../src/mirror/stats";
import { flushPulls } from "../../src/services/pulls";
import { upstream, UPSTREAM, useFakeUpstream } from "../../test/workers/fake-upstream";
import { OCI_MANIFEST, randomBytes, sha256 } from "../../test/workers/helpers";
import { countedEnv, countedFetch, emptyTally, installGlobalMeters, meter, type Measured } from "./meter";
import { operationResults, RESULTS_MARKER, type CostResults } from "./results";
import { seedLastKeys, seedRegistry, tableSizes, TAGS_PER_REPOSITORY } from "./seed";
import { report } from "./table";
import { EXACT_COUNTS, type Tally } from "./tally";
import worker from "./worker";

// What each hot operation costs, as Cloudflare bills it, at several registry sizes (COST_REPOSITORIES, seeded
// straight in D1 by ./seed.ts), with the registry's production settings (wrangler.toml's vars: token auth, 16 MiB
// parts, no tag cache) and a mirror of a fake upstream. Each operation is what a client sends for it, request by
// request, through the Worker's own fetch handler, with every binding counted (./meter.ts). The counts must be the
// same at every size: the test fails otherwise, after printing the table.
// Run by `npm run bench -- --only=cost` at 1,000 and 100,000 repositories; by `npx vitest run` at 100 and 2,000.

const SIZES = env.COST_REPOSITORIES.split(",").map(Number);
const REPETITIONS = Number(env.COST_REPETITIONS);
// A config and three layers: one the isolate's memory keeps (≤ 256 KiB), one only the Cache API keeps, and one
// larger than a part (16 MiB), which a streamed PATCH stores as a multipart object.
const LAYERS = [100 * 1024, 5 * 1024 * 1024, 20 * 1024 * 1024];
const ORIGIN = "http://registry.test";
const SERVICE = new URL(ORIGIN).host;

// Production settings, and three for the bench: a mirror of the fake upstream; every routine read logged (its line is
// then counted at the default LOG_READ_SAMPLE_RATE, see logWeight); no request logged for being slow (slowness here
// is the local runtime's, and would make the counts depend on timing).
const SETTINGS = { MIRRORS: JSON.stringify([{ prefix: "hub", upstream: UPSTREAM }]), LOG_READ_SAMPLE_RATE: "1", LOG_SLOW_MS: "3600000" };
const registry = countedEnv({ ...env, ...SETTINGS });
const withTagCache = countedEnv({ ...env, ...SETTINGS, TAG_CACHE_SECONDS: "60" });
const DEFAULT_SAMPLE_RATE = configOf({ AUTH_MODE: "open" } as Env).LOG_READ_SAMPLE_RATE;

/** A sampled request line counts as the share of such lines the default settings would write. */
meter.logWeight = (line) => {
  try {
    const entry = JSON.parse(line) as { event?: string; sampled?: number };
    return entry.event === "request" && entry.sampled !== undefined ? DEFAULT_SAMPLE_RATE : 1;
  } catch {
    return 1;
  }
};

interface Reply {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** One request to the Worker, as a client sends it: counted as an invocation, its CPU approximated (meter.end). */
async function send(
  target: object,
  method: string,
  path: string,
  init: { auth?: string; headers?: Record<string, string>; body?: BodyInit },
  expected: number,
): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (init.auth) headers.set("Authorization", init.auth);
  const url = path.startsWith("http") ? path : `${ORIGIN}${path}`;
  const ctx = createExecutionContext();
  meter.add("invocations");
  const started = meter.begin();
  const response = await worker.fetch(new Request(url, { method, headers, body: init.body ?? null }), target as Env, ctx);
  const returned = performance.now();
  const body = new Uint8Array(await response.arrayBuffer());
  await waitOnExecutionContext(ctx);
  const { cpuMs, doMs } = meter.end(started, returned);
  meter.add("cpuMs", cpuMs);
  meter.add("doMs", doMs);
  if (response.status !== expected) {
    throw new Error(`${method} ${path} answered ${response.status}, not ${expected}: ${new TextDecoder().decode(body.slice(0, 500))}\n${meter.lines.slice(-5).join("\n")}`);
  }
  return { status: response.status, headers: response.headers, body };
}

interface Image {
  repository: string;
  tag: string;
  /** The config first, then the layers. */
  blobs: { digest: string; bytes: Uint8Array }[];
  manifest: string;
  digest: string;
}

async function imageOf(repository: string, tag: string, layers: number[]): Promise<Image> {
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, id: crypto.randomUUID() }));
  const blobs = await Promise.all([config, ...layers.map((size) => randomBytes(size))].map(async (bytes) => ({ digest: await sha256(bytes), bytes })));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: blobs[0]!.digest, size: config.byteLength },
    layers: blobs.slice(1).map(({ digest, bytes }) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size: bytes.byteLength })),
  });
  return { repository, tag, blobs, manifest, digest: await sha256(manifest) };
}

/** A body of unknown length, in 64 KiB chunks, as docker and skopeo stream a layer. */
function streamed(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(at, (at += 64 * 1024)));
    },
  });
}

const withDigest = (location: string, digest: string) => `${location}${location.includes("?") ? "&" : "?"}digest=${digest}`;

/** docker and skopeo: for each blob a HEAD, a POST, one streamed PATCH and an empty PUT; then the manifest. */
async function pushPatching(image: Image, auth: string): Promise<void> {
  for (const blob of image.blobs) {
    await send(registry, "HEAD", `/v2/${image.repository}/blobs/${blob.digest}`, { auth }, 404);
    const started = await send(registry, "POST", `/v2/${image.repository}/blobs/uploads/`, { auth }, 202);
    const patched = await send(registry, "PATCH", started.headers.get("Location")!, { auth, body: streamed(blob.bytes) }, 202);
    await send(registry, "PUT", withDigest(patched.headers.get("Location")!, blob.digest), { auth }, 201);
  }
  await send(registry, "PUT", `/v2/${image.repository}/manifests/${image.tag}`, { auth, headers: { "Content-Type": OCI_MANIFEST }, body: image.manifest }, 201);
}

/** containerd: for each blob a HEAD, a POST, and a PUT with the whole blob; then the manifest. */
async function pushWhole(image: Image, auth: string): Promise<void> {
  for (const blob of image.blobs) {
    await send(registry, "HEAD", `/v2/${image.repository}/blobs/${blob.digest}`, { auth }, 404);
    const started = await send(registry, "POST", `/v2/${image.repository}/blobs/uploads/`, { auth }, 202);
    const headers = { "Content-Type": "application/octet-stream", "Content-Length": String(blob.bytes.byteLength) };
    await send(registry, "PUT", withDigest(started.headers.get("Location")!, blob.digest), { auth, headers, body: blob.bytes }, 201);
  }
  await send(registry, "PUT", `/v2/${image.repository}/manifests/${image.tag}`, { auth, headers: { "Content-Type": OCI_MANIFEST }, body: image.manifest }, 201);
}

/** A pull: the manifest by tag, then the config and every layer (each checked against its digest). */
async function pull(repository: string, tag: string, auth: string): Promise<void> {
  const manifest = await send(registry, "GET", `/v2/${repository}/manifests/${tag}`, { auth, headers: { Accept: OCI_MANIFEST } }, 200);
  const { config, layers } = JSON.parse(new TextDecoder().decode(manifest.body)) as { config: { digest: string }; layers: { digest: string }[] };
  for (const { digest } of [config, ...layers]) {
    const blob = await send(registry, "GET", `/v2/${repository}/blobs/${digest}`, { auth }, 200);
    expect(await sha256(blob.body)).toBe(digest);
  }
}

const getManifest = (target: object, repository: string, reference: string, auth: string) =>
  send(target, "GET", `/v2/${repository}/manifests/${reference}`, { auth, headers: { Accept: OCI_MANIFEST } }, 200);

/** An image published upstream, for the mirror to fetch. */
async function publishUpstream(name: string): Promise<Image> {
  const image = await imageOf(name, "v1", LAYERS);
  for (const blob of image.blobs) upstream.blobs.set(blob.digest, blob.bytes);
  upstream.manifests.set(image.digest, { body: image.manifest, mediaType: OCI_MANIFEST });
  upstream.tags.set(`${name}:${image.tag}`, image.digest);
  return image;
}

// An access token that may pull and push everywhere, exchanged at /token for a bearer token per repository, as a
// client does once per repository and session (the exchange is measured on its own).
let accessToken: string;
const basic = () => `Basic ${btoa(`ci:${accessToken}`)}`;

/** A bearer token for the repository; from a client address of its own, if given (CF-Connecting-IP). */
async function bearerFor(repository: string, actions: string, address?: string): Promise<string> {
  const headers: Record<string, string> = address ? { "CF-Connecting-IP": address } : {};
  const reply = await send(registry, "GET", `/token?service=${SERVICE}&scope=repository:${repository}:${actions}`, { auth: basic(), headers }, 200);
  return `Bearer ${(JSON.parse(new TextDecoder().decode(reply.body)) as { token: string }).token}`;
}

/**
 * Runs an operation with every binding counted. Pull and mirror counts pending in the isolate are written first
 * (unless what is measured is that write), so that no operation pays for another's.
 */
async function measure(operation: () => Promise<unknown>, { pending = false } = {}): Promise<Measured> {
  if (!pending) {
    await flushPulls(env.DB);
    await flushMirrorStats(env.DB);
  }
  const tally = emptyTally();
  meter.current = tally;
  meter.queries = [];
  meter.calls = [];
  try {
    await operation();
  } finally {
    meter.current = null;
  }
  return { tally, queries: meter.queries, calls: meter.calls };
}

let round = 0;

/**
 * Every operation once, on repositories and images of its own; the tallies by operation name. Names are the same
 * length in every round: a name's length decides how many search terms it has.
 */
async function measureAll(): Promise<Record<string, Measured>> {
  const id = String(++round).padStart(4, "0");
  const patching = `bench/patch-${id}`;
  const whole = `bench/whole-${id}`;
  const mirrored = `hub/bench/image-${id}`;
  // Pushes go to repositories that already hold an image, as a CI's pushes mostly do.
  for (const repository of [patching, whole]) await pushWhole(await imageOf(repository, "v0", [1024]), await bearerFor(repository, "pull,push"));
  const auth = { patching: await bearerFor(patching, "pull,push"), whole: await bearerFor(whole, "pull,push"), mirrored: await bearerFor(mirrored, "pull") };
  const first = await imageOf(patching, "v1", LAYERS);
  const second = await imageOf(whole, "v1", LAYERS);
  const upstreamImage = await publishUpstream(mirrored.slice("hub/".length));
  const tallies: Record<string, Measured> = {};
  const run = async (name: string, operation: () => Promise<unknown>, options?: { pending: boolean }) => (tallies[name] = await measure(operation, options));

  await run("push, streamed PATCH then PUT (docker, skopeo)", () => pushPatching(first, auth.patching));
  await run("push, PUT of each whole blob (containerd)", () => pushWhole(second, auth.whole));
  await run("pull: manifest by tag + 4 blobs, cold edge cache", () => pull(patching, "v1", auth.patching));
  await run("pull, warm edge cache", () => pull(patching, "v1", auth.patching));
  await run("manifest GET by tag, cold", () => getManifest(registry, whole, "v1", auth.whole));
  await run("manifest GET by tag, warm", () => getManifest(registry, whole, "v1", auth.whole));
  await run("manifest GET by digest, cold", () => getManifest(registry, whole, second.digest, auth.whole));
  await run("manifest GET by digest, warm", () => getManifest(registry, whole, second.digest, auth.whole));
  await run("manifest GET by tag, TAG_CACHE_SECONDS=60, cold", () => getManifest(withTagCache, patching, "v1", auth.patching));
  await run("manifest GET by tag, TAG_CACHE_SECONDS=60, warm", () => getManifest(withTagCache, patching, "v1", auth.patching));
  await run("mirror miss: pull of an image not stored yet", () => pull(mirrored, upstreamImage.tag, auth.mirrored));
  await run("mirror hit: the same pull again", () => pull(mirrored, upstreamImage.tag, auth.mirrored));
  // From a client not seen within the failed-login window (a CI job's first login), so that each run does the same.
  await run("token: GET /token with an access token, new client", () => bearerFor(whole, "pull", `198.51.100.${round % 250}`));
  // The isolate's counts are written after a response once 30 s or 1,000 pulls (mirror: requests) have passed since
  // the first unwritten one: a write per many pulls, shown apart. Here: after one pull by tag, and one mirror hit.
  await flushPulls(env.DB);
  await getManifest(registry, whole, "v1", auth.whole);
  await run("pull counts written (once per 30 s or 1,000 pulls, per isolate)", () => flushPulls(registry.DB), { pending: true });
  await flushMirrorStats(env.DB);
  await getManifest(registry, mirrored, "v1", auth.mirrored);
  await run("mirror counts written (once per 30 s or 1,000 requests, per isolate)", () => flushMirrorStats(registry.DB), { pending: true });
  return tallies;
}

/** The name ./seed.ts gives repository i (its counter is bound as a REAL, so the names end in ".0"). */
function seededName(i: number): string {
  return `${i % 10 === 0 ? "hub/seeded-" : `${"aaa/ccc/zzz/".slice(4 * (i % 3), 4 * (i % 3) + 4)}seeded-`}${i}.0`;
}

const LATENCY_REQUESTS = 100;

/** p50 and p99 of the read requests a browsing client or a puller sends, on a repository in the middle of the registry. */
async function latencies(size: number): Promise<CostResults["latencies"][number]> {
  let middle = Math.floor(size / 2) + 1;
  if (middle % 10 === 0) middle += 1;
  const repository = seededName(middle);
  const auth = basic();
  const requests: Record<string, () => Promise<unknown>> = {
    "manifest GET by tag": () => getManifest(registry, repository, "v5", auth),
    "tags list page (n=5)": () => send(registry, "GET", `/v2/${repository}/tags/list?n=5`, { auth }, 200),
    "catalog page (n=100, from the middle)": () => send(registry, "GET", `/v2/_catalog?n=100&last=${encodeURIComponent(repository)}`, { auth }, 200),
    "search (a word every seeded repository has)": () => send(registry, "GET", "/api/search?q=seeded", { auth }, 200),
    "search (one repository's full name)": () => send(registry, "GET", `/api/search?q=${encodeURIComponent(repository)}`, { auth }, 200),
  };
  const byRequest: Record<string, { p50: number; p99: number }> = {};
  for (const [name, request] of Object.entries(requests)) {
    for (let warm = 0; warm < 5; warm++) await request();
    const times: number[] = [];
    for (let i = 0; i < LATENCY_REQUESTS; i++) {
      const started = performance.now();
      await request();
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    const at = (p: number) => times[Math.min(times.length - 1, Math.ceil((p / 100) * times.length) - 1)]!;
    byRequest[name] = { p50: at(50), p99: at(99) };
  }
  await flushPulls(env.DB);
  return { repositories: size, requests: LATENCY_REQUESTS, byRequest };
}

/** Collection passes, as the cron runs them, until one has nothing more to do (at most 500). */
async function collectFully(size: number): Promise<CostResults["collection"][number]> {
  const started = Date.now();
  const budget = configOf(env).GC_SUBREQUEST_BUDGET;
  let passes = 0;
  let maxSubrequests = 0;
  let more = true;
  while (more && passes < 500) {
    const report = await collectGarbage(env);
    passes += 1;
    maxSubrequests = Math.max(maxSubrequests, report.subrequests);
    more = report.more;
  }
  return { repositories: size, passes, complete: !more, maxSubrequests, budget, seconds: (Date.now() - started) / 1000 };
}

useFakeUpstream();
let uncounted: typeof globalThis.fetch;

beforeAll(async () => {
  installGlobalMeters();
  // Around the fake upstream's (set by its beforeAll, before this one): its fetches are counted and timed as waits.
  uncounted = globalThis.fetch;
  globalThis.fetch = countedFetch(uncounted);
  const admin = await worker.fetch(
    new Request(`${ORIGIN}/admin/tokens`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "cost-bench", scopes: [{ repository: "*", actions: ["pull", "push"] }] }),
    }),
    env,
    createExecutionContext(),
  );
  expect(admin.status).toBe(201);
  accessToken = ((await admin.json()) as { token: string }).token;
});

afterAll(() => {
  globalThis.fetch = uncounted;
});

describe("the cost of an operation does not grow with the registry", () => {
  it(`counts the same at ${SIZES.join(" and ")} repositories`, async () => {
    const measured: Record<string, Measured[]>[] = [];
    const seeded: Record<string, number>[] = [];
    const latency: CostResults["latencies"] = [];
    const collection: CostResults["collection"] = [];
    let repositories = 0;
    await seedLastKeys(env.DB);
    for (const size of SIZES) {
      const started = Date.now();
      await seedRegistry(env.DB, repositories, size);
      repositories = size;
      seeded.push(await tableSizes(env.DB));
      console.error(`cost: seeded ${size} repositories in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // Once before the first size, so that what only a first run does (modules, keys, sessions) is behind us.
      if (measured.length === 0) await measureAll();
      const runs: Record<string, Measured[]> = {};
      for (let run = 0; run < REPETITIONS; run++) {
        for (const [name, measuredRun] of Object.entries(await measureAll())) (runs[name] ??= []).push(measuredRun);
      }
      measured.push(runs);
      console.error(`cost: measured at ${size} repositories`);
      latency.push(await latencies(size));
      collection.push(await collectFully(size));
      console.error(`cost: latencies and ${collection.at(-1)!.passes} collection passes at ${size} repositories`);
    }

    const operations = operationResults(SIZES, measured);
    const results: CostResults = {
      sizes: SIZES,
      tagsPerRepository: TAGS_PER_REPOSITORY,
      repetitions: REPETITIONS,
      layerBytes: LAYERS,
      seeded,
      operations,
      latencies: latency,
      collection,
    };
    console.log(`${RESULTS_MARKER}${JSON.stringify(results)}`);
    console.log(report(results));

    const exact = (tally: Tally) => Object.fromEntries(EXACT_COUNTS.map((key) => [key, tally[key]]));
    for (const operation of operations) {
      const [first, ...others] = operation.bySize.map((size) => exact(size.tally));
      for (const other of others) expect({ operation: operation.name, ...other }).toEqual({ operation: operation.name, ...first });
      for (const size of operation.bySize) expect({ operation: operation.name, unsteady: size.unsteady }).toEqual({ operation: operation.name, unsteady: [] });
    }
    for (const size of collection) expect({ repositories: size.repositories, complete: size.complete }).toEqual({ repositories: size.repositories, complete: true });
  });
});
