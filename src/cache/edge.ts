import type { MiddlewareHandler } from "hono";
import { isPublicRepository } from "../auth/access";
import type { AppEnv } from "../context";
import { parseRepositoryName } from "../references";
import { MAX_ENTRY_BYTES, MemoryCache, type KeptResponse } from "./memory";

// Content addressed by digest never changes: its responses are kept in the Cache API of the location that served
// them, and the small ones also in the isolate's memory. Keys are per repository, and the route's authorization runs
// before this middleware, so a copy is only ever served to a caller allowed to pull that repository. A hit reads
// neither R2 nor D1.
const CACHE_ORIGIN = "https://edge-cache.registry.internal";
const IMMUTABLE = "max-age=31536000, immutable";
const memory = new MemoryCache();

/**
 * Caches GET responses of blobs and manifests by digest, up to `maxBytes` each (a cached copy is teed), and of
 * manifests by tag for TAG_CACHE_SECONDS when that is set (a tag may move: this location forgets it when it moves
 * here, others within that many seconds).
 */
export function edgeCached(kind: "blobs" | "manifests"): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const reference = kind === "blobs" ? c.req.param("digest") : c.req.param("reference");
    const { config } = c.var.registry;
    // A HEAD is answered from a cached GET's headers (it is never what fills the cache).
    const head = c.req.method === "HEAD";
    if ((c.req.method !== "GET" && !head) || !reference || config.EDGE_CACHE_MAX_BYTES === 0) return next();
    const byDigest = reference.includes(":");
    if (!byDigest && config.TAG_CACHE_SECONDS === 0) return next();
    const repository = parseRepositoryName(c.req.param("name") ?? "");
    const visibility = isPublicRepository(config, repository) ? "public" : "private";
    const lifetime = byDigest ? IMMUTABLE : `max-age=${config.TAG_CACHE_SECONDS}`;
    const key = cacheKey(repository, kind, reference);
    const cacheControl = `${visibility}, ${lifetime}, no-transform`;
    const expiresAt = byDigest ? Infinity : Date.now() + config.TAG_CACHE_SECONDS * 1000;
    // The isolate's copy answers whole GETs, HEADs and conditional requests; ranges go to the Cache API.
    const ranged = c.req.header("Range") !== undefined;
    const kept = ranged ? null : memory.get(key, Date.now());
    if (kept) return fromMemory(kept, cacheControl, head, c.req.header("If-None-Match"));

    const cache = caches.default;
    // Range and If-None-Match travel with the lookup: the cache answers 206 and 304 itself.
    const lookup = new Request(key, { headers: pick(c.req.raw.headers, ["Range", "If-None-Match"]) });
    const hit = await cache.match(lookup);
    if (hit) {
      if (head) await hit.body?.cancel();
      // A tag's cached copy may be near its end: only content by digest moves from the Cache API into memory.
      const small = byDigest && !head && hit.status === 200 && Number(hit.headers.get("Content-Length")) <= MAX_ENTRY_BYTES;
      const body = small ? await keep(key, hit, expiresAt) : head ? null : hit.body;
      const response = new Response(body, hit);
      response.headers.set("Cache-Control", cacheControl);
      response.headers.set("X-Edge-Cache", "hit");
      return response;
    }
    await next();
    if (head) return;
    const response = c.res;
    const length = Number(response.headers.get("Content-Length"));
    if (response.status >= 300 || response.headers.has("X-Mirror-Status")) return;
    response.headers.set("Cache-Control", cacheControl);
    if (response.status !== 200 || !Number.isFinite(length) || length > config.EDGE_CACHE_MAX_BYTES) return;
    // Small bodies are read whole (into memory too); larger ones are teed into the cache as they stream out.
    const small = length <= MAX_ENTRY_BYTES;
    const bytes = small ? await keep(key, response, expiresAt) : null;
    const [toClient, toCache] = small ? [bytes, bytes] : response.body ? response.body.tee() : [null, null];
    // The cache itself only ever answers after this middleware's authorization, so its copy may say public.
    const stored = new Response(toCache, { status: 200, headers: response.headers });
    stored.headers.set("Cache-Control", `public, ${lifetime}`);
    c.executionCtx.waitUntil(cache.put(key, stored).catch(() => undefined));
    c.res = new Response(toClient, response);
    c.res.headers.set("X-Edge-Cache", "miss");
  };
}

/** Reads a small 200 response whole and keeps it in the isolate's memory; returns its bytes. */
async function keep(key: string, response: Response, expiresAt: number): Promise<Uint8Array> {
  const body = new Uint8Array(await response.arrayBuffer());
  const headers = [...response.headers].filter(([name]) => !["cache-control", "x-edge-cache"].includes(name));
  memory.set(key, { body, headers, expiresAt });
  return body;
}

function fromMemory(kept: KeptResponse, cacheControl: string, head: boolean, ifNoneMatch: string | undefined): Response {
  const headers = new Headers(kept.headers);
  headers.set("Cache-Control", cacheControl);
  headers.set("X-Edge-Cache", "hit");
  if (ifNoneMatch !== undefined && ifNoneMatch === headers.get("ETag")) return new Response(null, { status: 304, headers });
  return new Response(head ? null : kept.body, { status: 200, headers });
}

const cacheKey = (repository: string, kind: "blobs" | "manifests", reference: string) =>
  `${CACHE_ORIGIN}/${repository}/${kind}/${reference}`;

function pick(headers: Headers, names: string[]): Headers {
  const picked = new Headers();
  for (const name of names) {
    const value = headers.get(name);
    if (value !== null) picked.set(name, value);
  }
  return picked;
}

/**
 * Drops this location's cached copy (and this isolate's) after a delete or a tag move (other locations and isolates
 * keep theirs until they evict it, or, for a tag, until its TAG_CACHE_SECONDS pass).
 */
export async function purgeEdgeCache(repository: string, kind: "blobs" | "manifests", reference: string): Promise<void> {
  memory.delete(cacheKey(repository, kind, reference));
  await caches.default.delete(cacheKey(repository, kind, reference)).catch(() => false);
}
