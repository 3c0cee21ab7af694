import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
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

describe("edge cache for content addressed by digest", () => {
  it("serves a blob's second GET from the cache without touching R2 or D1, ranges and conditionals included", async () => {
    const bytes = randomBytes(50_000);
    const digest = await pushBlob("cache/app", bytes);
    const { env: testEnv, calls } = countingEnv();
    const first = await get(testEnv, `/v2/cache/app/blobs/${digest}`);
    expect(first.response.headers.get("X-Edge-Cache")).toBe("miss");
    expect(first.response.headers.get("Cache-Control")).toBe("public, max-age=31536000, immutable, no-transform");
    expect(calls.DB + calls.BLOBS).toBeGreaterThan(0);

    calls.DB = calls.BLOBS = 0;
    const second = await get(testEnv, `/v2/cache/app/blobs/${digest}`);
    expect(second.response.status).toBe(200);
    expect(second.response.headers.get("X-Edge-Cache")).toBe("hit");
    expect(second.response.headers.get("Content-Length")).toBe("50000");
    expect(second.response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await sha256(second.body)).toBe(digest);
    const partial = await get(testEnv, `/v2/cache/app/blobs/${digest}`, { Range: "bytes=10-19" });
    expect(partial.response.status).toBe(206);
    expect(partial.body).toEqual(bytes.slice(10, 20));
    const unchanged = await get(testEnv, `/v2/cache/app/blobs/${digest}`, { "If-None-Match": `"${digest}"` });
    expect(unchanged.response.status).toBe(304);
    const head = await get(testEnv, `/v2/cache/app/blobs/${digest}`, {}, "HEAD");
    expect(head.response.status).toBe(200);
    expect(head.response.headers.get("X-Edge-Cache")).toBe("hit");
    expect(head.response.headers.get("Content-Length")).toBe("50000");
    expect(head.response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(head.body.byteLength).toBe(0);
    expect(calls).toEqual({ DB: 0, BLOBS: 0 });

    // A delete drops the cached copy: the blob is gone from this repository.
    const ctx = createExecutionContext();
    expect((await worker.fetch(new Request(`${ORIGIN}/v2/cache/app/blobs/${digest}`, { method: "DELETE" }), testEnv as typeof env, ctx)).status).toBe(202);
    expect((await get(testEnv, `/v2/cache/app/blobs/${digest}`)).response.status).toBe(404);
  });

  it("caches manifests by digest but not by tag", async () => {
    const digest = await pushManifest("cache/manifests", "latest", await pushImage("cache/manifests"));
    const { env: testEnv, calls } = countingEnv();
    await get(testEnv, `/v2/cache/manifests/manifests/${digest}`);
    calls.DB = calls.BLOBS = 0;
    const hit = await get(testEnv, `/v2/cache/manifests/manifests/${digest}`);
    expect(hit.response.headers.get("X-Edge-Cache")).toBe("hit");
    expect(hit.response.headers.get("Content-Type")).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(await sha256(hit.body)).toBe(digest);
    const head = await get(testEnv, `/v2/cache/manifests/manifests/${digest}`, {}, "HEAD");
    expect(head.response.headers.get("X-Edge-Cache")).toBe("hit");
    expect(head.response.headers.get("Content-Length")).toBe(String(hit.body.byteLength));
    expect(head.response.headers.get("Content-Type")).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(calls).toEqual({ DB: 0, BLOBS: 0 });
    const byTag = await get(testEnv, "/v2/cache/manifests/manifests/latest");
    expect(byTag.response.headers.get("X-Edge-Cache")).toBeNull();
    expect(byTag.response.headers.get("Cache-Control")).toBe("no-cache");
  });

  it("answers repeated small GETs, HEADs and conditional requests from the isolate's memory, without the Cache API", async () => {
    const digest = await pushManifest("cache/memory", "v1", await pushImage("cache/memory"));
    const { env: testEnv, calls } = countingEnv();
    const first = await get(testEnv, `/v2/cache/memory/manifests/${digest}`);
    expect(first.response.headers.get("X-Edge-Cache")).toBe("miss");
    calls.DB = calls.BLOBS = 0;
    const match = vi.spyOn(caches.default, "match");
    try {
      const again = await get(testEnv, `/v2/cache/memory/manifests/${digest}`);
      expect(again.response.headers.get("X-Edge-Cache")).toBe("hit");
      expect(again.response.headers.get("Content-Type")).toBe("application/vnd.oci.image.manifest.v1+json");
      expect(again.response.headers.get("Cache-Control")).toBe("public, max-age=31536000, immutable, no-transform");
      expect(again.body).toEqual(first.body);
      const head = await get(testEnv, `/v2/cache/memory/manifests/${digest}`, {}, "HEAD");
      expect(head.response.headers.get("Content-Length")).toBe(String(first.body.byteLength));
      expect(head.body.byteLength).toBe(0);
      const unchanged = await get(testEnv, `/v2/cache/memory/manifests/${digest}`, { "If-None-Match": `"${digest}"` });
      expect(unchanged.response.status).toBe(304);
      expect(match).not.toHaveBeenCalled();
      // A range is the Cache API's to answer.
      const partial = await get(testEnv, `/v2/cache/memory/manifests/${digest}`, { Range: "bytes=0-9" });
      expect(partial.response.status).toBe(206);
      expect(partial.body).toEqual(first.body.slice(0, 10));
      expect(match).toHaveBeenCalledTimes(1);
    } finally {
      match.mockRestore();
    }
    expect(calls).toEqual({ DB: 0, BLOBS: 0 });

    // A delete forgets the isolate's copy too.
    const ctx = createExecutionContext();
    expect((await worker.fetch(new Request(`${ORIGIN}/v2/cache/memory/manifests/${digest}`, { method: "DELETE" }), testEnv as typeof env, ctx)).status).toBe(202);
    await waitOnExecutionContext(ctx);
    expect((await get(testEnv, `/v2/cache/memory/manifests/${digest}`)).response.status).toBe(404);
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

    // The tag moves through this location: the next pull sees the new digest at once.
    const manifest = await pushImage("cache/tagged", [4096]);
    const ctx = createExecutionContext();
    const put = await worker.fetch(
      new Request(`${ORIGIN}/v2/cache/tagged/manifests/latest`, { method: "PUT", headers: { "Content-Type": manifest.mediaType }, body: JSON.stringify(manifest) }),
      testEnv as typeof env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(put.status).toBe(201);
    const moved = await get(testEnv, "/v2/cache/tagged/manifests/latest");
    expect(moved.response.headers.get("X-Edge-Cache")).toBe("miss");
    expect(moved.response.headers.get("Docker-Content-Digest")).toBe(put.headers.get("Docker-Content-Digest"));
    expect(moved.response.headers.get("Docker-Content-Digest")).not.toBe(first);
  });

  it("never serves a cached copy through another repository or to a caller who may not pull", async () => {
    const digest = await pushBlob("cache/private", randomBytes(1000));
    const token = { AUTH_MODE: "token", PUBLIC_REPOSITORIES: "" };
    const admin = { Authorization: `Basic ${btoa(`admin:${env.ADMIN_TOKEN}`)}` };
    const { env: testEnv } = countingEnv(token);
    const warm = await get(testEnv, `/v2/cache/private/blobs/${digest}`, admin);
    expect(warm.response.status).toBe(200);
    expect(warm.response.headers.get("Cache-Control")).toBe("private, max-age=31536000, immutable, no-transform");
    expect((await get(testEnv, `/v2/cache/private/blobs/${digest}`, admin)).response.headers.get("X-Edge-Cache")).toBe("hit");
    expect((await get(testEnv, `/v2/cache/private/blobs/${digest}`)).response.status).toBe(401);
    expect((await get(testEnv, `/v2/cache/elsewhere/blobs/${digest}`, admin)).response.status).toBe(404);
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
