import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { cacheKey } from "../../src/cache/edge";
import { GarbageCollector } from "../../src/gc/collector";
import worker from "../../src/index";
import { ORIGIN, pushBlob, pushImage, pushManifest, randomBytes, sha256 } from "./helpers";

/** The Worker's bindings, with every call to D1 and R2 counted. */
function countingEnv(vars: Record<string, string> = {}) {
  const calls = { DB: 0, BLOBS: 0 };
  const counted = <T extends object>(target: T, name: keyof typeof calls): T =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          calls[name] += 1;
          return value.apply(object, args);
        };
      },
    });
  return { env: { ...env, ...vars, DB: counted(env.DB, "DB"), BLOBS: counted(env.BLOBS, "BLOBS") }, calls };
}

async function get(testEnv: object, path: string, headers: Record<string, string> = {}, method = "GET") {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, { method, headers }), testEnv as typeof env, ctx);
  const body = new Uint8Array(await response.arrayBuffer());
  await waitOnExecutionContext(ctx);
  return { response, body };
}

const ADMIN_BASIC = { Authorization: `Basic ${btoa(`admin:${env.ADMIN_TOKEN}`)}` };

async function send(testEnv: object, path: string, init: RequestInit) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), testEnv as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** Takes a blob away as another location would: its rows go, and nothing here is told (no purge reaches this isolate). */
async function deleteElsewhere(digest: string) {
  await env.DB.batch([
    env.DB.prepare("DELETE FROM repository_blobs WHERE digest = ?").bind(digest),
    env.DB.prepare("DELETE FROM blobs WHERE digest = ?").bind(digest),
  ]);
}

describe("edge cache for content addressed by digest", () => {
  it("serves a blob's second GET from the cache without reading R2, ranges and conditionals included; D1 confirms the link", async () => {
    const bytes = randomBytes(300_000);
    const digest = await pushBlob("cache/app", bytes);
    const { env: testEnv, calls } = countingEnv();
    const first = await get(testEnv, `/v2/cache/app/blobs/${digest}`);
    expect(first.response.headers.get("X-Edge-Cache")).toBe("miss");
    expect(first.response.headers.get("Cache-Control")).toBe("public, max-age=31536000, immutable, no-transform");
    expect(calls.BLOBS).toBeGreaterThan(0);

    calls.DB = calls.BLOBS = 0;
    const second = await get(testEnv, `/v2/cache/app/blobs/${digest}`);
    expect(second.response.status).toBe(200);
    expect(second.response.headers.get("X-Edge-Cache")).toBe("hit");
    expect(second.response.headers.get("Content-Length")).toBe("300000");
    expect(second.response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await sha256(second.body)).toBe(digest);
    const partial = await get(testEnv, `/v2/cache/app/blobs/${digest}`, { Range: "bytes=10-19" });
    expect(partial.response.status).toBe(206);
    expect(partial.body).toEqual(bytes.slice(10, 20));
    const unchanged = await get(testEnv, `/v2/cache/app/blobs/${digest}`, { "If-None-Match": `"${digest}"` });
    expect(unchanged.response.status).toBe(304);
    const head = await get(testEnv, `/v2/cache/app/blobs/${digest}`, {}, "HEAD");
    expect(head.response.status).toBe(200);
    expect(head.response.headers.get("Content-Length")).toBe("300000");
    expect(head.body.byteLength).toBe(0);
    expect(calls.BLOBS).toBe(0);
    // Every one of those read the link row: a cache never answers for a link D1 no longer has.
    expect(calls.DB).toBeGreaterThanOrEqual(4);

    // A delete here: 404 at once.
    expect((await send(testEnv, `/v2/cache/app/blobs/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect((await get(testEnv, `/v2/cache/app/blobs/${digest}`)).response.status).toBe(404);
  });

  it("keeps small blobs (configs) in the isolate's memory: a hit asks neither the Cache API nor R2", async () => {
    const digest = await pushBlob("cache/memory", randomBytes(2000));
    const { env: testEnv, calls } = countingEnv();
    const first = await get(testEnv, `/v2/cache/memory/blobs/${digest}`);
    expect(first.response.headers.get("X-Edge-Cache")).toBe("miss");
    calls.DB = calls.BLOBS = 0;
    const match = vi.spyOn(caches.default, "match");
    try {
      const again = await get(testEnv, `/v2/cache/memory/blobs/${digest}`);
      expect(again.response.headers.get("X-Edge-Cache")).toBe("hit");
      expect(again.body).toEqual(first.body);
      const partial = await get(testEnv, `/v2/cache/memory/blobs/${digest}`, { Range: "bytes=5-14" });
      expect(partial.response.status).toBe(206);
      expect(partial.body).toEqual(first.body.slice(5, 15));
      expect(match).not.toHaveBeenCalled();
    } finally {
      match.mockRestore();
    }
    expect(calls.BLOBS).toBe(0);
  });

  it("answers 404 for a blob deleted elsewhere although every cache here still holds it (GET and HEAD)", async () => {
    for (const size of [2000, 300_000]) {
      const digest = await pushBlob("cache/gone", randomBytes(size));
      const { env: testEnv } = countingEnv();
      await get(testEnv, `/v2/cache/gone/blobs/${digest}`);
      expect((await get(testEnv, `/v2/cache/gone/blobs/${digest}`)).response.headers.get("X-Edge-Cache")).toBe("hit");
      await deleteElsewhere(digest);
      expect((await get(testEnv, `/v2/cache/gone/blobs/${digest}`)).response.status).toBe(404);
      expect((await get(testEnv, `/v2/cache/gone/blobs/${digest}`, {}, "HEAD")).response.status).toBe(404);
      expect((await get(testEnv, `/v2/cache/gone/blobs/${digest}`, { Range: "bytes=0-9" })).response.status).toBe(404);
    }
  });

  it("lets the same image be pushed again after its pull filled the caches and a delete and GC removed it", async () => {
    const { env: testEnv } = countingEnv();
    const manifest = await pushImage("cache/repush", [2000, 300_000]);
    const digest = await pushManifest("cache/repush", "v1", manifest);
    const blobDigests = [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)];
    const layerBytes = new Map<string, Uint8Array>();
    for (const blob of blobDigests) {
      await get(testEnv, `/v2/cache/repush/blobs/${blob}`);
      const hit = await get(testEnv, `/v2/cache/repush/blobs/${blob}`);
      expect(hit.response.headers.get("X-Edge-Cache")).toBe("hit");
      layerBytes.set(blob, hit.body);
    }
    // Deleted, then collected: GC runs with no grace so the bytes really go.
    expect((await send(testEnv, `/v2/cache/repush/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    for (const blob of blobDigests) expect((await send(testEnv, `/v2/cache/repush/blobs/${blob}`, { method: "DELETE" })).status).toBe(202);
    const collector = new GarbageCollector(env.DB, env.BLOBS);
    for (let pass = 0; pass < 3; pass++) await collector.run({ dryRun: false, graceMs: 0, batch: 1000, now: Date.now() + 1000 });
    for (const blob of blobDigests) expect(await env.DB.prepare("SELECT 1 FROM blobs WHERE digest = ?").bind(blob).first()).toBeNull();

    // The client pushes as docker does: HEAD each blob, upload what is missing, then the manifest.
    for (const blob of blobDigests) {
      const head = await get(testEnv, `/v2/cache/repush/blobs/${blob}`, {}, "HEAD");
      expect(head.response.status).toBe(404);
      const bytes = layerBytes.get(blob)!;
      const upload = await send(testEnv, `/v2/cache/repush/blobs/uploads/?digest=${blob}`, { method: "POST", body: bytes, headers: { "Content-Length": String(bytes.byteLength) } });
      expect(upload.status).toBe(201);
    }
    const put = await send(testEnv, "/v2/cache/repush/manifests/v1", { method: "PUT", headers: { "Content-Type": manifest.mediaType }, body: JSON.stringify(manifest) });
    expect(put.status).toBe(201);
    for (const blob of blobDigests) expect(await sha256((await get(testEnv, `/v2/cache/repush/blobs/${blob}`)).body)).toBe(blob);
  });

  it("reads manifests by digest from D1 every time, never from a cache, and says they are immutable", async () => {
    const digest = await pushManifest("cache/manifests", "latest", await pushImage("cache/manifests"));
    const { env: testEnv, calls } = countingEnv();
    const first = await get(testEnv, `/v2/cache/manifests/manifests/${digest}`);
    expect(first.response.headers.get("Cache-Control")).toBe("public, max-age=31536000, immutable, no-transform");
    expect(await sha256(first.body)).toBe(digest);
    calls.DB = 0;
    await get(testEnv, `/v2/cache/manifests/manifests/${digest}`);
    expect(calls.DB).toBeGreaterThan(0);
    const byTag = await get(testEnv, "/v2/cache/manifests/manifests/latest");
    expect(byTag.response.headers.get("X-Edge-Cache")).toBeNull();
    expect(byTag.response.headers.get("Cache-Control")).toBe("no-cache");
    expect((await send(testEnv, `/v2/cache/manifests/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect((await get(testEnv, `/v2/cache/manifests/manifests/${digest}`)).response.status).toBe(404);
  });

  it("keeps manifests by tag for TAG_CACHE_SECONDS when set, and forgets a tag that moves here", async () => {
    const first = await pushManifest("cache/tagged", "latest", await pushImage("cache/tagged"));
    const { env: testEnv, calls } = countingEnv({ TAG_CACHE_SECONDS: "30" });
    const miss = await get(testEnv, "/v2/cache/tagged/manifests/latest");
    expect(miss.response.headers.get("X-Edge-Cache")).toBe("miss");
    expect(miss.response.headers.get("Cache-Control")).toBe("public, max-age=30, no-transform");
    calls.DB = calls.BLOBS = 0;
    const hit = await get(testEnv, "/v2/cache/tagged/manifests/latest");
    expect(hit.response.headers.get("X-Edge-Cache")).toBe("hit");
    expect(hit.response.headers.get("Docker-Content-Digest")).toBe(first);
    expect(calls).toEqual({ DB: 0, BLOBS: 0 });

    // A client that accepts only Docker types is answered as the handler answers it, not from the kept OCI copy.
    const dockerOnly = await get(testEnv, "/v2/cache/tagged/manifests/latest", { Accept: "application/vnd.docker.distribution.manifest.v2+json" });
    expect(dockerOnly.response.status).toBe(404);

    // The tag moves through this location: the next pull sees the new digest at once.
    const manifest = await pushImage("cache/tagged", [4096]);
    const put = await send(testEnv, "/v2/cache/tagged/manifests/latest", { method: "PUT", headers: { "Content-Type": manifest.mediaType }, body: JSON.stringify(manifest) });
    expect(put.status).toBe(201);
    const moved = await get(testEnv, "/v2/cache/tagged/manifests/latest");
    expect(moved.response.headers.get("X-Edge-Cache")).toBe("miss");
    expect(moved.response.headers.get("Docker-Content-Digest")).toBe(put.headers.get("Docker-Content-Digest"));
    expect(moved.response.headers.get("Docker-Content-Digest")).not.toBe(first);
  });

  it("never serves a cached copy through another repository or to a caller who may not pull", async () => {
    const digest = await pushBlob("cache/private", randomBytes(1000));
    const token = { AUTH_MODE: "token", PUBLIC_REPOSITORIES: "public/*" };
    const { env: testEnv } = countingEnv(token);
    const warm = await get(testEnv, `/v2/cache/private/blobs/${digest}`, ADMIN_BASIC);
    expect(warm.response.status).toBe(200);
    expect(warm.response.headers.get("Cache-Control")).toBe("private, max-age=31536000, immutable, no-transform");
    expect((await get(testEnv, `/v2/cache/private/blobs/${digest}`, ADMIN_BASIC)).response.headers.get("X-Edge-Cache")).toBe("hit");
    expect((await get(testEnv, `/v2/cache/private/blobs/${digest}`)).response.status).toBe(401);
    expect((await get(testEnv, `/v2/cache/elsewhere/blobs/${digest}`, ADMIN_BASIC)).response.status).toBe(404);
    // The review's exploit: a public repository's path whose digest part walks to the private entry. It is answered
    // as the same walk to a digest stored nowhere is: the digest is invalid.
    const absent = `sha256:${"e".repeat(64)}`;
    for (const walk of ["%2F..%2F..%2F..%2F..%2F", "%2f..%2f..%2f..%2f..%2f", "%2F%2e%2e%2F%2e%2e%2F%2e%2e%2F%2e%2e%2F"]) {
      const path = (target: string) => `/v2/public/x/blobs/sha256:0${walk}cache${walk.slice(-3)}private${walk.slice(-3)}blobs${walk.slice(-3)}${target}`;
      for (const method of ["GET", "HEAD"]) {
        const attack = await get(testEnv, path(digest), {}, method);
        const control = await get(testEnv, path(absent), {}, method);
        expect(attack.response.status).toBe(400);
        expect(control.response.status).toBe(400);
        expect(attack.body.byteLength === 0 ? "" : new TextDecoder().decode(attack.body).replaceAll(digest, absent)).toBe(new TextDecoder().decode(control.body));
      }
    }
  });

  it("builds every key from validated parts, in a query string that URL parsing never rewrites", () => {
    expect(cacheKey({ kind: "blob", repository: "a/b", digest: `sha256:${"0".repeat(64)}` })).toBe(
      `https://edge-cache.registry.internal/v1/blob?repository=a%2Fb&digest=sha256%3A${"0".repeat(64)}`,
    );
    expect(() => cacheKey({ kind: "blob", repository: "a/../b", digest: `sha256:${"0".repeat(64)}` })).toThrow();
    expect(() => cacheKey({ kind: "blob", repository: "a", digest: "sha256:0/../../x" })).toThrow();
    expect(() => cacheKey({ kind: "tag", repository: "a", tag: "v1/../../x" })).toThrow();
  });
});

describe("the isolate's memory cache", () => {
  it("stays within its byte budget by evicting the least recently used, and drops expired entries", async () => {
    const { MemoryCache, MAX_ENTRY_BYTES } = await import("../../src/cache/memory");
    const memory = new MemoryCache();
    const entry = (expiresAt = Infinity) => ({ body: new Uint8Array(MAX_ENTRY_BYTES), headers: [], expiresAt });
    // 16 MiB of 256 KiB entries is 64: the 65th pushes out the least recently used.
    for (let i = 0; i < 64; i++) memory.set(`k${i}`, entry());
    expect(memory.get("k0", 0)).not.toBeNull(); // now the most recently used
    memory.set("k64", entry());
    expect(memory.get("k1", 0)).toBeNull();
    expect(memory.get("k0", 0)).not.toBeNull();
    expect(memory.get("k64", 0)).not.toBeNull();
    // Larger than one entry may be: not kept.
    memory.set("big", { body: new Uint8Array(MAX_ENTRY_BYTES + 1), headers: [], expiresAt: Infinity });
    expect(memory.get("big", 0)).toBeNull();
    memory.set("tag", entry(1000));
    expect(memory.get("tag", 999)).not.toBeNull();
    expect(memory.get("tag", 1000)).toBeNull();
  });
});
