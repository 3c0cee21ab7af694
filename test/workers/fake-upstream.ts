import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, vi } from "vitest";
import worker from "../../src/index";
import { OCI_MANIFEST, ORIGIN, randomBytes, sha256 } from "./helpers";

// A fake upstream registry, reached through the Worker's outbound fetch: Bearer token auth like Docker Hub's,
// call counting, and faults on demand. A test file calls useFakeUpstream() once.
export const UPSTREAM = "https://upstream.test";
export const PRIVATE = "https://private.test";

export interface Fault {
  // down: the connection fails; status: an error answer; hang: no headers ever; corrupt: a byte flipped; truncate:
  // half the body, then a reset; wrong-digest: a manifest that does not hash to its digest; slow: 64 KiB per 20 ms;
  // stall: half the body, then silence (the connection stays open) until the reader gives up.
  kind: "down" | "status" | "hang" | "corrupt" | "truncate" | "wrong-digest" | "slow" | "stall";
  status?: number;
  /** Only requests with these methods fail (all when unset). */
  methods?: string[];
}

export const upstream = {
  manifests: new Map<string, { body: string; mediaType: string }>(),
  tags: new Map<string, string>(),
  blobs: new Map<string, Uint8Array>(),
  calls: [] as string[],
  /** Calls the upstream answered, with the status: "HEAD /v2/library/alpine/manifests/3 200". */
  answered: [] as string[],
  fault: null as Fault | null,
  tokenLifetime: 300,
  /** Upstream bodies that stalled and were then cancelled by their reader. */
  stallsCancelled: 0,
  count(prefix: string) {
    return this.calls.filter((call) => call.startsWith(prefix)).length;
  },
};

/** The fault for a request of this method, if any. */
function faultFor(method: string): Fault | null {
  const fault = upstream.fault;
  return fault && (!fault.methods || fault.methods.includes(method)) ? fault : null;
}

/** Half of `bytes`, then nothing: the stream stays open until its reader cancels it. */
function stalled(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start: (controller) => controller.enqueue(bytes.slice(0, Math.floor(bytes.byteLength / 2))),
    cancel: () => {
      upstream.stallsCancelled += 1;
    },
  });
}

function fakeRegistry(origin: string, basicPassword: string | null) {
  const app = new Hono();
  const service = new URL(origin).host;
  app.get("/token", (c) => {
    if (basicPassword !== null && c.req.header("Authorization") !== `Basic ${btoa(`mirror:${basicPassword}`)}`) return c.text("no", 401);
    return c.json({ token: `token-for:${c.req.query("scope")}`, expires_in: upstream.tokenLifetime });
  });
  app.use("/v2/*", async (c, next) => {
    const name = c.req.path.split(/\/(?:manifests|blobs|tags)\//)[0]!.slice(4);
    if (c.req.header("Authorization") !== `Bearer token-for:repository:${name}:pull`) {
      return c.json({ errors: [{ code: "UNAUTHORIZED" }] }, 401, {
        "WWW-Authenticate": `Bearer realm="${origin}/token",service="${service}",scope="repository:${name}:pull"`,
      });
    }
    const fault = faultFor(c.req.method);
    if (fault?.kind === "status") return c.json({ errors: [{ code: "X" }] }, fault.status as 500, fault.status === 429 ? { "Retry-After": "17" } : {});
    await next();
    c.res.headers.set("ratelimit-remaining", "99;w=21600");
  });
  app.on(["GET", "HEAD"], "/v2/:name{.+}/manifests/:reference", (c) => {
    const reference = c.req.param("reference");
    const digest = reference.includes(":") ? reference : upstream.tags.get(`${c.req.param("name")}:${reference}`);
    const manifest = digest ? upstream.manifests.get(digest) : undefined;
    if (!manifest || !digest) return c.json({ errors: [{ code: "MANIFEST_UNKNOWN" }] }, 404);
    const headers = { "Content-Type": manifest.mediaType, "Docker-Content-Digest": digest };
    if (c.req.method === "HEAD") return new Response(null, { headers });
    if (faultFor("GET")?.kind === "stall") return new Response(stalled(new TextEncoder().encode(manifest.body)), { headers });
    // A tampered body still claims the original digest.
    const body = faultFor("GET")?.kind === "wrong-digest" ? `${manifest.body} ` : manifest.body;
    return new Response(body, { headers });
  });
  app.on(["GET", "HEAD"], "/v2/:name{.+}/blobs/:digest", (c) => {
    const bytes = upstream.blobs.get(c.req.param("digest"));
    if (!bytes) return c.json({ errors: [{ code: "BLOB_UNKNOWN" }] }, 404);
    const headers = { "Content-Length": String(bytes.byteLength), "Docker-Content-Digest": c.req.param("digest") };
    if (c.req.method === "HEAD") return c.body(null, 200, headers);
    const fault = faultFor("GET")?.kind;
    let body: Uint8Array = bytes;
    if (fault === "corrupt") body = Uint8Array.from(bytes, (byte, index) => (index === 0 ? byte ^ 0xff : byte));
    if (fault === "truncate") {
      const cut = bytes.subarray(0, bytes.byteLength / 2);
      return new Response(new ReadableStream({ start: (controller) => { controller.enqueue(cut); controller.error(new Error("connection reset")); } }), { headers });
    }
    if (fault === "stall") return new Response(stalled(bytes), { headers });
    if (fault === "slow") {
      const stream = new ReadableStream({
        async start(controller) {
          for (let at = 0; at < bytes.byteLength; at += 64 * 1024) {
            await new Promise((done) => setTimeout(done, 20));
            controller.enqueue(bytes.slice(at, at + 64 * 1024));
          }
          controller.close();
        },
      });
      return new Response(stream, { headers });
    }
    return new Response(body, { headers });
  });
  app.get("/v2/:name{.+}/tags/list", (c) => {
    const name = c.req.param("name");
    const tags = [...upstream.tags.keys()].filter((key) => key.startsWith(`${name}:`)).map((key) => key.slice(name.length + 1));
    return c.json({ name, tags });
  });
  return app;
}

/** Routes the Worker's fetches to UPSTREAM and PRIVATE to the fake, for the test file; resets calls and faults per test. */
export function useFakeUpstream(): void {
  const upstreams: Record<string, Hono> = { [UPSTREAM]: fakeRegistry(UPSTREAM, null), [PRIVATE]: fakeRegistry(PRIVATE, "upstream-secret") };
  const realFetch = globalThis.fetch;
  beforeAll(() => {
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      const app = upstreams[new URL(request.url).origin];
      if (!app) return realFetch(input, init);
      const call = `${request.method} ${new URL(request.url).pathname}`;
      upstream.calls.push(call);
      const fault = faultFor(request.method);
      if (fault?.kind === "down") throw new TypeError("Network connection lost.");
      if (fault?.kind === "hang") {
        return new Promise((_, reject) => request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
      }
      const response = await app.fetch(request);
      upstream.answered.push(`${call} ${response.status}`);
      return response;
    });
  });
  afterAll(() => vi.restoreAllMocks());
  beforeEach(() => {
    upstream.calls = [];
    upstream.answered = [];
    upstream.fault = null;
    upstream.stallsCancelled = 0;
  });
}

export type MirrorEnv = typeof env & Record<string, unknown>;

/** The test environment with these mirrors configured, open access, and the private upstream's secret. */
export function mirrorEnvWith(mirrors: unknown[], settings: Record<string, unknown> = {}): MirrorEnv {
  return { ...env, AUTH_MODE: "open", MIRRORS: JSON.stringify(mirrors), MIRROR_PRIVATE_PASSWORD: "upstream-secret", ...settings };
}

/** A request to the Worker, its body read whole and its waitUntil work finished before it returns. */
export function callerOf(mirrorEnv: MirrorEnv) {
  return async (path: string, init?: RequestInit): Promise<Response> => {
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), mirrorEnv, ctx);
    const body = new Uint8Array(await response.arrayBuffer());
    await waitOnExecutionContext(ctx);
    return new Response(response.status === 204 || response.status === 304 || init?.method === "HEAD" ? null : body, { status: response.status, headers: response.headers });
  };
}

/** Publishes an image upstream: a config, one layer of `size` random bytes, a manifest, a tag. */
export async function publish(name: string, tag: string, size = 4096) {
  const layer = randomBytes(size);
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", seed: crypto.randomUUID() }));
  const layerDigest = await sha256(layer);
  const configDigest = await sha256(config);
  upstream.blobs.set(layerDigest, layer);
  upstream.blobs.set(configDigest, config);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.byteLength },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size }],
  });
  const digest = await sha256(body);
  upstream.manifests.set(digest, { body, mediaType: OCI_MANIFEST });
  upstream.tags.set(`${name}:${tag}`, digest);
  return { digest, body, layer, layerDigest, configDigest };
}

/** Makes a mirrored tag due for revalidation. */
export async function ageTag(repository: string, tag: string) {
  await env.DB.prepare("UPDATE mirror_checks SET checked_at = 0 WHERE repository = ? AND tag = ?").bind(repository, tag).run();
}

/** How many repositories the blob is recorded in, and how many objects R2 holds for its digest. */
export async function storedCopies(digest: string): Promise<{ links: number; objects: number }> {
  const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM repository_blobs WHERE digest = ?").bind(digest).first<{ n: number }>();
  const listed = await env.BLOBS.list({ prefix: `blobs/${digest.replace(":", "/")}/` });
  return { links: row!.n, objects: listed.objects.length };
}
