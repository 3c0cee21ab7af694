import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { callerOf, mirrorEnvWith, publish, storedCopies, upstream, UPSTREAM, useFakeUpstream, type Fault } from "./fake-upstream";
import { ORIGIN, sha256 } from "./helpers";

// An upstream that stalls, breaks off, corrupts or refuses a blob: the client gets a prompt error, nothing is stored
// or recorded, and neither the failed download nor its lease holds up the next client.
useFakeUpstream();

const mirrorEnv = mirrorEnvWith([
  { prefix: "hub", upstream: UPSTREAM, library: true, timeoutSeconds: 1 },
  // A patient mirror: its stalled downloads take 5 s to give up, longer than anyone should wait on them.
  { prefix: "patient", upstream: UPSTREAM, library: true, timeoutSeconds: 5 },
]);
const pull = callerOf(mirrorEnv);

/** A pull whose body may break: the status, the bytes or the error, how long it took; waitUntil work finished. */
async function download(path: string): Promise<{ status: number; headers: Headers; bytes: Uint8Array | null; error: unknown; ms: number }> {
  const started = Date.now();
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`), mirrorEnv, ctx);
  let bytes: Uint8Array | null = null;
  let error: unknown = null;
  try {
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (caught) {
    error = caught;
  }
  const ms = Date.now() - started;
  await waitOnExecutionContext(ctx);
  return { status: response.status, headers: response.headers, bytes, error, ms };
}

async function until(condition: () => boolean, what: string) {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

/** An image upstream, its manifest already pulled through `prefix`. */
async function image(name: string, prefix = "hub", size = 200_000) {
  const published = await publish(`library/${name}`, "1", size);
  expect((await pull(`/v2/${prefix}/${name}/manifests/1`)).status).toBe(200);
  upstream.calls = [];
  return { ...published, blob: `/v2/${prefix}/${name}/blobs/${published.layerDigest}` };
}

describe("an upstream that goes silent in the middle of a blob", () => {
  it("fails the client within seconds of the silence (timeoutSeconds 1), closes the upstream connection, stores nothing", async () => {
    const { blob, layerDigest } = await image("stalled");
    upstream.fault = { kind: "stall" };
    const stalled = await download(blob);
    expect(stalled.status).toBe(200);
    expect(stalled.error).not.toBeNull();
    expect(stalled.bytes).toBeNull();
    expect(stalled.ms).toBeGreaterThanOrEqual(900);
    expect(stalled.ms).toBeLessThan(3000);
    expect(upstream.stallsCancelled).toBe(1);
    expect(await storedCopies(layerDigest)).toEqual({ links: 0, objects: 0 });

    upstream.fault = null;
    const healthy = await download(blob);
    expect(await sha256(healthy.bytes!)).toBe(layerDigest);
    expect(await storedCopies(layerDigest)).toEqual({ links: 1, objects: 1 });
    upstream.calls = [];
    expect(await sha256(new Uint8Array(await (await pull(blob)).arrayBuffer()))).toBe(layerDigest);
    expect(upstream.calls).toEqual([]);
  });

  it("does not hold a second client on the stalled leader's lease: it is served once the upstream recovers, and stores the blob", async () => {
    const { blob, layerDigest } = await image("stalled-leader");
    upstream.fault = { kind: "stall" };
    const first = download(blob);
    await until(() => upstream.count("GET /v2/library/stalled-leader/blobs/") === 1, "the first download to start");
    upstream.fault = null;
    const second = await download(blob);
    expect(second.status).toBe(200);
    expect(await sha256(second.bytes!)).toBe(layerDigest);
    // At most until the stalled leader gives up (1 s) and frees its lease, then a download of its own.
    expect(second.ms).toBeLessThan(2500);
    expect((await first).error).not.toBeNull();
    expect(await storedCopies(layerDigest)).toEqual({ links: 1, objects: 1 });
  });

  it("does not make a follower wait out a slower leader: past a short wait it streams from the upstream itself", async () => {
    const { blob, layerDigest } = await image("stalled-patient", "patient");
    upstream.fault = { kind: "stall" };
    const first = download(blob);
    await until(() => upstream.count("GET /v2/library/stalled-patient/blobs/") === 1, "the first download to start");
    upstream.fault = null;
    const second = await download(blob);
    expect(await sha256(second.bytes!)).toBe(layerDigest);
    // The follower waited at most 2 s, not the 5 s the leader takes to give up (nor its download).
    expect(second.ms).toBeLessThan(4000);
    expect(second.headers.get("X-Mirror-Status")).toBe("miss");
    expect(second.headers.get("Cache-Control")).toBeNull();
    const failed = await first;
    expect(failed.error).not.toBeNull();
    expect(failed.ms).toBeGreaterThanOrEqual(4500);
    // The follower stored nothing; the next client leads and stores it.
    expect(await storedCopies(layerDigest)).toEqual({ links: 0, objects: 0 });
    expect(await sha256((await download(blob)).bytes!)).toBe(layerDigest);
    expect(await storedCopies(layerDigest)).toEqual({ links: 1, objects: 1 });
  });

  it("fails a manifest whose body stalls promptly, saying what timed out, and stores nothing", async () => {
    await publish("library/stalled-manifest", "1");
    upstream.fault = { kind: "stall" };
    const started = Date.now();
    const response = await pull("/v2/hub/stalled-manifest/manifests/1");
    expect(Date.now() - started).toBeLessThan(3000);
    expect(response.status).toBe(502);
    expect(JSON.stringify(await response.json())).toContain("the upstream sent no bytes for 1 s (timeoutSeconds)");
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifests WHERE repository = 'hub/stalled-manifest'").first<{ n: number }>();
    expect(row!.n).toBe(0);
    upstream.fault = null;
    expect((await pull("/v2/hub/stalled-manifest/manifests/1")).status).toBe(200);
  });

  it("says which wait timed out when no headers come", async () => {
    await publish("library/no-headers", "1");
    upstream.fault = { kind: "hang" };
    const response = await pull("/v2/hub/no-headers/manifests/1");
    expect(response.status).toBe(502);
    expect(JSON.stringify(await response.json())).toContain("the upstream sent no response headers within 1 s (timeoutSeconds)");
  });
});

describe("a blob download the upstream spoils", () => {
  const faults: { fault: Fault; status: number; body: "broken" | "error" }[] = [
    { fault: { kind: "truncate" }, status: 200, body: "broken" },
    { fault: { kind: "corrupt" }, status: 200, body: "broken" },
    { fault: { kind: "status", status: 429, methods: ["GET"] }, status: 429, body: "error" },
    { fault: { kind: "status", status: 500, methods: ["GET"] }, status: 502, body: "error" },
  ];
  for (const { fault, status, body } of faults) {
    const name = `spoiled-${fault.kind}-${fault.status ?? 0}`;
    it(`${fault.kind}${fault.status ? ` ${fault.status}` : ""}: fails the client promptly, records and caches nothing, and the next client is served`, async () => {
      const { blob, layerDigest } = await image(name);
      upstream.fault = fault;
      const spoiled = await download(blob);
      expect(spoiled.status).toBe(status);
      expect(spoiled.ms).toBeLessThan(2000);
      if (body === "broken") {
        // The whole wrong blob never reaches the client: its download breaks before the end.
        expect(spoiled.error).not.toBeNull();
      } else {
        expect(spoiled.headers.get("Content-Type")).toBe("application/json");
        if (status === 429) expect(spoiled.headers.get("Retry-After")).toBe("17");
      }
      expect(await storedCopies(layerDigest)).toEqual({ links: 0, objects: 0 });

      upstream.fault = null;
      const healthy = await download(blob);
      expect(healthy.status).toBe(200);
      expect(await sha256(healthy.bytes!)).toBe(layerDigest);
      expect(await storedCopies(layerDigest)).toEqual({ links: 1, objects: 1 });
    });
  }

  it("lets a follower of a failed leader lead at once, instead of waiting", async () => {
    const { blob, layerDigest } = await image("spoiled-follower", "hub", 1_000_000);
    upstream.fault = { kind: "truncate" };
    const [first, second] = await Promise.all([download(blob), download(blob)]);
    // Whichever led got the broken body; the other either followed it into a fresh download or broke too, promptly.
    for (const result of [first, second]) expect(result.ms).toBeLessThan(2500);
    upstream.fault = null;
    expect(await sha256((await download(blob)).bytes!)).toBe(layerDigest);
  });
});

describe("the fetch lease", () => {
  const lease = (name: string) => env.MIRROR_FETCHES.get(env.MIRROR_FETCHES.idFromName(`test ${name} ${crypto.randomUUID()}`));

  it("is taken over once a leader that vanished stops renewing it", async () => {
    const coordinator = lease("vanished");
    expect(await coordinator.claim("a", 300, 0)).toEqual({ role: "leader" });
    expect(await coordinator.claim("b", 300, 0)).toEqual({ role: "follower", outcome: null });
    await new Promise((done) => setTimeout(done, 350));
    expect(await coordinator.claim("b", 300, 0)).toEqual({ role: "leader" });
    // The old leader's late release does not free the new leader's lease.
    await coordinator.release("a", { kind: "stored" });
    expect(await coordinator.claim("c", 300, 0)).toEqual({ role: "follower", outcome: null });
  });

  it("stays with a leader that renews it", async () => {
    const coordinator = lease("renewed");
    await coordinator.claim("a", 300, 0);
    for (let i = 0; i < 4; i++) {
      await new Promise((done) => setTimeout(done, 150));
      expect(await coordinator.renew("a", 300)).toBe(true);
    }
    expect(await coordinator.claim("b", 300, 0)).toEqual({ role: "follower", outcome: null });
    expect(await coordinator.renew("b", 300)).toBe(false);
  });

  it("is free the moment its leader releases it, and the waiting followers hear how it went", async () => {
    const coordinator = lease("released");
    await coordinator.claim("a", 60_000, 0);
    const started = Date.now();
    const waiting = coordinator.claim("b", 60_000, 30_000);
    await new Promise((done) => setTimeout(done, 50));
    const failure = { kind: "failed", error: { status: null, message: "the upstream sent no bytes for 1 s (timeoutSeconds)", retryAfter: null } } as const;
    await coordinator.release("a", failure);
    expect(await waiting).toEqual({ role: "follower", outcome: failure });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await coordinator.claim("b", 60_000, 0)).toEqual({ role: "leader" });
  });
});
