import type { MiddlewareHandler } from "hono";
import { isPublicRepository } from "../auth/access";
import type { Config } from "../config";
import type { AppEnv } from "../context";
import type { ByteRange } from "../ranges";
import { parseDigest, parseRepositoryName, parseTag } from "../references";
import { acceptsManifest } from "../manifests/schema";
import { pathOf } from "../routes/path";
import { policiesFor } from "../policies/config";
import { MAX_ENTRY_BYTES, MemoryCache } from "./memory";

// Two caches sit in front of R2: the Cache API of the location that served a response, and, for small entries, the
// isolate's memory. Neither decides who may read what, and neither says whether something exists:
// - Blob bytes are cached below the handler. The route authorizes the caller and reads the blob's link row in D1 (a
//   nearby replica) on every request, cache or not; only the R2 read is saved. A deleted link or a collected blob is
//   therefore a 404 everywhere at once (within the replica's lag), whatever a cache still holds, and bytes of a
//   digest never change, so a cached copy can only be the right bytes.
// - Manifests by tag (only when TAG_CACHE_SECONDS > 0) are whole responses kept that many seconds after the route
//   has authorized the caller: the one cached answer that may be stale, by at most TAG_CACHE_SECONDS.
// Keys are built by cacheKey() alone, from parts it validates again and encodes into a query string, which URL
// parsing never rewrites (no dot segment or percent-escape in a part can reach another key).
const CACHE_ORIGIN = "https://edge-cache.registry.internal";
const memory = new MemoryCache();

type Entry = { kind: "blob"; repository: string; digest: string } | { kind: "tag"; repository: string; tag: string };

/** The one place cache keys are made: every part validated, then encoded. */
export function cacheKey(entry: Entry): string {
  const query = new URLSearchParams({ repository: parseRepositoryName(entry.repository) });
  if (entry.kind === "blob") query.set("digest", parseDigest(entry.digest).digest);
  else query.set("tag", parseTag(entry.tag));
  return `${CACHE_ORIGIN}/v1/${entry.kind}?${query}`;
}

/** The Cache-Control of content by digest: it never changes; shared caches may keep it only when anyone may pull it. */
export function immutable(config: Pick<Config, "AUTH_MODE" | "PUBLIC_REPOSITORIES">, repository: string): string {
  return `${visibilityOf(config, repository)}, max-age=31536000, immutable, no-transform`;
}

/** Whether shared caches may keep a repository's responses: only when anyone may pull it. */
function visibilityOf(config: Pick<Config, "AUTH_MODE" | "PUBLIC_REPOSITORIES">, repository: string): "public" | "private" {
  return isPublicRepository(config, repository) ? "public" : "private";
}

/** What lets a request finish work after its response (filling a cache); a no-op outside a request. */
export interface Waiter {
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * Blob bytes from a cache, or null on a miss. Called only after the caller was authorized and the link was read.
 */
export async function cachedBlob(repository: string, digest: string, range: ByteRange | null): Promise<ReadableStream | null> {
  const key = cacheKey({ kind: "blob", repository, digest });
  const kept = memory.get(key, Date.now());
  if (kept) return new Response(range ? kept.body.slice(range.offset, range.offset + range.length) : kept.body).body;
  const headers = range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : undefined;
  const hit = await caches.default.match(new Request(key, { headers })).catch(() => undefined);
  if (!hit?.body) return null;
  if (hit.status !== (range ? 206 : 200)) {
    await hit.body.cancel();
    return null;
  }
  return hit.body;
}

/**
 * Serves blob bytes just read from R2 while keeping a copy: small ones in memory too, those up to `maxBytes` in the
 * Cache API (teed as they stream out). Only whole, stored (digest-checked) blobs are passed here.
 */
export async function keepBlob(
  repository: string,
  digest: string,
  size: number,
  body: ReadableStream,
  maxBytes: number,
  ctx: Waiter,
): Promise<ReadableStream> {
  if (size > maxBytes) return body;
  const key = cacheKey({ kind: "blob", repository, digest });
  const put = (stored: BodyInit | null) =>
    ctx.waitUntil(
      caches.default
        .put(key, new Response(stored, { headers: { "Content-Length": String(size), "Cache-Control": "public, max-age=31536000, immutable" } }))
        .catch(() => undefined),
    );
  if (size <= MAX_ENTRY_BYTES) {
    const bytes = new Uint8Array(await new Response(body).arrayBuffer());
    if (bytes.byteLength !== size) return new Response(bytes).body!;
    memory.set(key, { body: bytes, headers: [], expiresAt: Infinity });
    put(bytes);
    return new Response(bytes).body!;
  }
  const [toClient, toCache] = body.tee();
  put(toCache);
  return toClient;
}

/**
 * Keeps whole GET responses of manifests by tag for TAG_CACHE_SECONDS (when set), after authorization. A tag moved or
 * deleted through this location is forgotten here at once; elsewhere within TAG_CACHE_SECONDS.
 */
export const tagCached: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { repository, reference } = pathOf(c);
  const { config } = c.var.registry;
  const head = c.req.method === "HEAD";
  if ((c.req.method !== "GET" && !head) || !reference || !("tag" in reference) || config.TAG_CACHE_SECONDS === 0) return next();
  // A pull policy judges every pull of its repositories in the handler: none is kept or answered here.
  if (policiesFor(config.PULL_POLICIES, repository).length > 0) return next();
  const key = cacheKey({ kind: "tag", repository, tag: reference.tag });
  const cacheControl = `${visibilityOf(config, repository)}, max-age=${config.TAG_CACHE_SECONDS}, no-transform`;
  const now = Date.now();
  const kept = memory.get(key, now);
  const ifNoneMatch = c.req.header("If-None-Match");
  // Served only as the handler would serve it: a client that accepts no manifest of the kept type asks the handler.
  const keptType = kept?.headers.find(([name]) => name === "content-type")?.[1] ?? "";
  if (kept && acceptsManifest(c.req.header("Accept") ?? null, keptType)) {
    const headers = new Headers(kept.headers);
    headers.set("Cache-Control", cacheControl);
    headers.set("X-Edge-Cache", "hit");
    if (ifNoneMatch !== undefined && ifNoneMatch === headers.get("ETag")) return new Response(null, { status: 304, headers });
    return new Response(head ? null : kept.body, { status: 200, headers });
  }
  await next();
  const response = c.res;
  if (response.status !== 200 || head || response.headers.has("X-Mirror-Status")) return;
  const length = Number(response.headers.get("Content-Length"));
  if (!Number.isFinite(length) || length > MAX_ENTRY_BYTES) return;
  const body = new Uint8Array(await response.arrayBuffer());
  const headers = [...response.headers].filter(([name]) => !["cache-control", "x-edge-cache"].includes(name));
  memory.set(key, { body, headers, expiresAt: now + config.TAG_CACHE_SECONDS * 1000 });
  c.res = new Response(body, response);
  c.res.headers.set("Cache-Control", cacheControl);
  c.res.headers.set("X-Edge-Cache", "miss");
};

/**
 * Drops this location's and this isolate's copy after a delete or a tag move. Blobs need it only to free the space
 * (their link is read on every request); tags, so that this location stops serving the old one at once.
 */
export async function purgeEdgeCache(repository: string, kind: "blobs" | "manifests", reference: string): Promise<void> {
  if (kind === "manifests" && reference.includes(":")) return;
  const key = kind === "blobs" ? cacheKey({ kind: "blob", repository, digest: reference }) : cacheKey({ kind: "tag", repository, tag: reference });
  memory.delete(key);
  await caches.default.delete(key).catch(() => false);
}
