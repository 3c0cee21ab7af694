import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { ageTag, callerOf, mirrorEnvWith, publish, upstream, UPSTREAM, useFakeUpstream } from "./fake-upstream";
import { OCI_MANIFEST, sha256 } from "./helpers";

// What a mirror tells: X-Mirror-Status on every answer, one log line per upstream exchange, and per-mirror counts
// at GET /admin/mirrors, kept in memory and written to D1 in batches, never once per request.
useFakeUpstream();

const MIRRORS = [
  { prefix: "hub", upstream: UPSTREAM, library: true, timeoutSeconds: 1 },
  { prefix: "other", upstream: UPSTREAM, library: true },
];
const pull = callerOf(mirrorEnvWith(MIRRORS));
const ADMIN = { Authorization: `Bearer ${env.ADMIN_TOKEN}` };

interface Entry {
  prefix: string;
  upstream: string | null;
  hits: number;
  misses: number;
  revalidations: number;
  staleServes: number;
  upstreamErrors: number;
  bytesFromUpstream: number;
  bytesSaved: number;
  updatedAt: number | null;
}

async function stats(prefix = "hub"): Promise<Entry> {
  const response = await pull("/admin/mirrors", { headers: ADMIN });
  expect(response.status).toBe(200);
  const { mirrors } = (await response.json()) as { mirrors: Entry[] };
  return mirrors.find((entry) => entry.prefix === prefix)!;
}

const status = (response: Response) => response.headers.get("X-Mirror-Status");

describe("X-Mirror-Status", () => {
  it("says miss, hit, revalidated and stale for manifests", async () => {
    await publish("library/told", "1");
    expect(status(await pull("/v2/hub/told/manifests/1"))).toBe("miss");
    expect(status(await pull("/v2/hub/told/manifests/1"))).toBe("hit");
    expect(status(await pull("/v2/hub/told/manifests/1", { method: "HEAD" }))).toBe("hit");
    await ageTag("hub/told", "1");
    expect(status(await pull("/v2/hub/told/manifests/1"))).toBe("revalidated");
    await ageTag("hub/told", "1");
    upstream.fault = { kind: "down" };
    const stale = await pull("/v2/hub/told/manifests/1");
    expect(status(stale)).toBe("stale");
    expect(stale.headers.get("Warning")).toContain("Stale");
  });

  it("says miss for a blob streamed from upstream (not cacheable) and hit for the stored copy (cacheable)", async () => {
    const image = await publish("library/told-blob", "1", 50_000);
    await pull("/v2/hub/told-blob/manifests/1");
    const streamed = await pull(`/v2/hub/told-blob/blobs/${image.layerDigest}`);
    expect(status(streamed)).toBe("miss");
    expect(streamed.headers.get("Cache-Control")).toBeNull();
    const stored = await pull(`/v2/hub/told-blob/blobs/${image.layerDigest}`);
    expect(status(stored)).toBe("hit");
    expect(stored.headers.get("Cache-Control")).toContain("immutable");
    expect(await sha256(new Uint8Array(await stored.arrayBuffer()))).toBe(image.layerDigest);
    expect(status(await pull(`/v2/hub/told-blob/blobs/${image.layerDigest}`, { method: "HEAD" }))).toBe("hit");
  });

  it("says revalidated for a blob another mirrored repository stored, once the upstream vouched for it", async () => {
    const image = await publish("library/told-first", "1");
    upstream.tags.set("library/told-second:1", image.digest);
    await pull("/v2/hub/told-first/manifests/1");
    await pull(`/v2/hub/told-first/blobs/${image.layerDigest}`);
    const linked = await pull(`/v2/hub/told-second/blobs/${image.layerDigest}`);
    expect(status(linked)).toBe("revalidated");
    expect(await sha256(new Uint8Array(await linked.arrayBuffer()))).toBe(image.layerDigest);
  });

  it("says miss for the upstream's tag list and stale for the local one when the upstream is down", async () => {
    await publish("library/told-tags", "a");
    await pull("/v2/hub/told-tags/manifests/a");
    expect(status(await pull("/v2/hub/told-tags/tags/list"))).toBe("miss");
    upstream.fault = { kind: "down" };
    expect(status(await pull("/v2/hub/told-tags/tags/list"))).toBe("stale");
  });

  it("says hit for a tag the edge cache answers, which keeps mirrored tags as before", async () => {
    const cached = callerOf(mirrorEnvWith(MIRRORS, { TAG_CACHE_SECONDS: "60" }));
    await publish("library/told-edge", "1");
    const first = await cached("/v2/hub/told-edge/manifests/1");
    expect(status(first)).toBe("miss");
    expect(first.headers.get("X-Edge-Cache")).toBe("miss");
    const second = await cached("/v2/hub/told-edge/manifests/1");
    expect(second.headers.get("X-Edge-Cache")).toBe("hit");
    expect(status(second)).toBe("hit");
  });

  it("is not set on errors nor on repositories that are not mirrored", async () => {
    upstream.fault = { kind: "down" };
    expect(status(await pull("/v2/hub/told-nothing/manifests/1"))).toBeNull();
    expect(status(await pull("/v2/local/app/manifests/1"))).toBeNull();
  });
});

describe("the upstream log", () => {
  const logged = async (run: () => Promise<unknown>) => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    await run();
    const lines = log.mock.calls.map(([line]) => (typeof line === "string" && line.startsWith("{") ? JSON.parse(line) : null));
    log.mockRestore();
    return lines.filter((line) => line?.event === "upstream");
  };
  const logging = callerOf(mirrorEnvWith(MIRRORS, { LOG_REQUESTS: "true" }));

  it("has one line per upstream exchange: mirror, method, path, status, duration and Docker Hub's ratelimit-remaining", async () => {
    const image = await publish("library/logged", "1");
    const lines = await logged(() => logging("/v2/hub/logged/manifests/1"));
    expect(lines.map((line) => `${line.method} ${line.path} ${line.status}`)).toEqual([
      "HEAD /v2/library/logged/manifests/1 401",
      "GET /token 200",
      "HEAD /v2/library/logged/manifests/1 200",
      `GET /v2/library/logged/manifests/${image.digest} 200`,
    ]);
    const get = lines.at(-1)!;
    expect(get).toMatchObject({ event: "upstream", mirror: "hub", host: "upstream.test", ratelimitRemaining: "99;w=21600", bytes: image.body.length });
    expect(typeof get.durationMs).toBe("number");
    expect(get.reason).toBeUndefined();
  });

  it("gives the reason of a failure, saying what timed out", async () => {
    await publish("library/logged-failure", "1");
    await logging("/v2/hub/logged-failure/manifests/other");
    upstream.fault = { kind: "stall" };
    const stalled = await logged(() => logging("/v2/hub/logged-failure/manifests/1"));
    expect(stalled.at(-1)).toMatchObject({ method: "GET", status: 200, reason: "the upstream sent no bytes for 1 s (timeoutSeconds)" });
    upstream.fault = { kind: "hang" };
    await ageTag("hub/logged-failure", "1");
    const hung = await logged(() => logging("/v2/hub/logged-failure/manifests/1"));
    expect(hung).toEqual([expect.objectContaining({ method: "HEAD", status: null, reason: "the upstream sent no response headers within 1 s (timeoutSeconds)" })]);
    upstream.fault = { kind: "status", status: 503 };
    const refused = await logged(() => logging("/v2/hub/logged-failure/manifests/1"));
    expect(refused).toEqual([expect.objectContaining({ status: 503, reason: "the upstream answered 503" })]);
  });

  it("is off with LOG_REQUESTS=false", async () => {
    await publish("library/unlogged", "1");
    expect(await logged(() => pull("/v2/hub/unlogged/manifests/1"))).toEqual([]);
  });
});

describe("GET /admin/mirrors", () => {
  it("needs the admin token", async () => {
    expect((await pull("/admin/mirrors")).status).toBe(401);
  });

  it("counts hits, misses, revalidations, stale serves, upstream errors, bytes from upstream and bytes saved, per mirror", async () => {
    const image = await publish("library/counted", "1", 10_000);
    const before = await stats();
    const otherBefore = await stats("other");
    await pull("/v2/hub/counted/manifests/1"); // miss
    await pull(`/v2/hub/counted/blobs/${image.layerDigest}`); // miss: 10,000 bytes from upstream
    await pull(`/v2/hub/counted/blobs/${image.layerDigest}`); // hit: 10,000 bytes saved
    await pull("/v2/hub/counted/manifests/1"); // hit
    await pull(`/v2/hub/counted/blobs/${image.layerDigest}`, { method: "HEAD" }); // hit, no bytes
    await ageTag("hub/counted", "1");
    await pull("/v2/hub/counted/manifests/1"); // revalidated
    await ageTag("hub/counted", "1");
    upstream.fault = { kind: "status", status: 500 };
    await pull("/v2/hub/counted/manifests/1"); // stale, one upstream error
    const after = await stats();
    expect({
      hits: after.hits - before.hits,
      misses: after.misses - before.misses,
      revalidations: after.revalidations - before.revalidations,
      staleServes: after.staleServes - before.staleServes,
      upstreamErrors: after.upstreamErrors - before.upstreamErrors,
      bytesSaved: after.bytesSaved - before.bytesSaved,
    }).toEqual({
      hits: 3,
      misses: 2,
      revalidations: 1,
      staleServes: 1,
      upstreamErrors: 1,
      bytesSaved: 10_000 + 3 * image.body.length,
    });
    // The layer and the manifest once, plus the token answers and error bodies.
    expect(after.bytesFromUpstream - before.bytesFromUpstream).toBeGreaterThanOrEqual(10_000 + image.body.length);
    expect(after).toMatchObject({ prefix: "hub", upstream: UPSTREAM });
    expect(after.updatedAt).toEqual(expect.any(Number));
    expect(await stats("other")).toEqual(otherBefore);
  });

  it("writes nothing to D1 per hit: counts wait in memory for the next flush", async () => {
    await publish("library/batched", "1");
    await pull("/v2/hub/batched/manifests/1");
    const flushed = await stats();
    const rows = () => env.DB.prepare("SELECT hits FROM mirror_stats WHERE prefix = 'hub'").first<{ hits: number }>();
    for (let i = 0; i < 20; i++) await pull("/v2/hub/batched/manifests/1", { headers: { Accept: OCI_MANIFEST } });
    expect((await rows())!.hits).toBe(flushed.hits);
    expect((await stats()).hits).toBe(flushed.hits + 20);
    expect((await rows())!.hits).toBe(flushed.hits + 20);
  });
});
