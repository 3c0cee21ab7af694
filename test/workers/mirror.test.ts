import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { OCI_INDEX, OCI_MANIFEST, ORIGIN, randomBytes, sha256 } from "./helpers";

// A fake upstream registry, reached through the Worker's outbound fetch: Bearer token auth like Docker Hub's,
// call counting, and faults on demand.
const UPSTREAM = "https://upstream.test";
const PRIVATE = "https://private.test";

interface Fault {
  kind: "down" | "status" | "hang" | "corrupt" | "truncate" | "wrong-digest" | "slow";
  status?: number;
}

const upstream = {
  manifests: new Map<string, { body: string; mediaType: string }>(),
  tags: new Map<string, string>(),
  blobs: new Map<string, Uint8Array>(),
  calls: [] as string[],
  fault: null as Fault | null,
  tokenLifetime: 300,
  count(prefix: string) {
    return this.calls.filter((call) => call.startsWith(prefix)).length;
  },
};

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
    const fault = upstream.fault;
    if (fault?.kind === "status") return c.json({ errors: [{ code: "X" }] }, fault.status as 500, fault.status === 429 ? { "Retry-After": "17" } : {});
    await next();
  });
  app.on(["GET", "HEAD"], "/v2/:name{.+}/manifests/:reference", (c) => {
    const reference = c.req.param("reference");
    const digest = reference.includes(":") ? reference : upstream.tags.get(`${c.req.param("name")}:${reference}`);
    const manifest = digest ? upstream.manifests.get(digest) : undefined;
    if (!manifest || !digest) return c.json({ errors: [{ code: "MANIFEST_UNKNOWN" }] }, 404);
    const headers = { "Content-Type": manifest.mediaType, "Docker-Content-Digest": digest };
    // A tampered body still claims the original digest.
    const body = upstream.fault?.kind === "wrong-digest" ? `${manifest.body} ` : manifest.body;
    return new Response(c.req.method === "HEAD" ? null : body, { headers });
  });
  app.on(["GET", "HEAD"], "/v2/:name{.+}/blobs/:digest", (c) => {
    const bytes = upstream.blobs.get(c.req.param("digest"));
    if (!bytes) return c.json({ errors: [{ code: "BLOB_UNKNOWN" }] }, 404);
    const headers = { "Content-Length": String(bytes.byteLength), "Docker-Content-Digest": c.req.param("digest") };
    if (c.req.method === "HEAD") return c.body(null, 200, headers);
    const fault = upstream.fault?.kind;
    let body: Uint8Array = bytes;
    if (fault === "corrupt") body = Uint8Array.from(bytes, (byte, index) => (index === 0 ? byte ^ 0xff : byte));
    if (fault === "truncate") {
      const cut = bytes.subarray(0, bytes.byteLength / 2);
      return new Response(new ReadableStream({ start: (controller) => { controller.enqueue(cut); controller.error(new Error("connection reset")); } }), { headers });
    }
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

const upstreams: Record<string, Hono> = { [UPSTREAM]: fakeRegistry(UPSTREAM, null), [PRIVATE]: fakeRegistry(PRIVATE, "upstream-secret") };
const realFetch = globalThis.fetch;

beforeAll(() => {
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const app = upstreams[new URL(request.url).origin];
    if (!app) return realFetch(input, init);
    upstream.calls.push(`${request.method} ${new URL(request.url).pathname}`);
    if (upstream.fault?.kind === "down") throw new TypeError("Network connection lost.");
    if (upstream.fault?.kind === "hang") {
      return new Promise((_, reject) => request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
    }
    return app.fetch(request);
  });
});

afterAll(() => vi.restoreAllMocks());

beforeEach(() => {
  upstream.calls = [];
  upstream.fault = null;
});

const mirrorEnv = {
  ...env,
  AUTH_MODE: "open",
  MIRRORS: JSON.stringify([
    { prefix: "hub", upstream: UPSTREAM, library: true, timeoutSeconds: 1 },
    { prefix: "private", upstream: PRIVATE, username: "mirror", passwordSecret: "MIRROR_PRIVATE_PASSWORD" },
  ]),
  MIRROR_PRIVATE_PASSWORD: "upstream-secret",
};

async function call(path: string, init?: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), mirrorEnv, ctx);
  const body = new Uint8Array(await response.arrayBuffer());
  await waitOnExecutionContext(ctx);
  return new Response(response.status === 204 || response.status === 304 || init?.method === "HEAD" ? null : body, { status: response.status, headers: response.headers });
}

/** Publishes an image upstream: a config, one layer of `size` random bytes, a manifest, a tag. */
async function publish(name: string, tag: string, size = 4096) {
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
  return { digest, body, layer, layerDigest };
}

async function ageTag(repository: string, tag: string) {
  await env.DB.prepare("UPDATE mirror_checks SET checked_at = 0 WHERE repository = ? AND tag = ?").bind(repository, tag).run();
}

describe("pulling through the mirror", () => {
  it("fetches a manifest by tag on a miss (Bearer challenge, anonymous), stores it, and serves it after", async () => {
    const image = await publish("library/alpine", "3.20");
    const first = await call("/v2/hub/alpine/manifests/3.20", { headers: { Accept: OCI_MANIFEST } });
    expect(first.status).toBe(200);
    expect(first.headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect(await first.text()).toBe(image.body);
    expect(upstream.count("GET /token")).toBe(1);

    upstream.calls = [];
    const second = await call("/v2/hub/alpine/manifests/3.20");
    expect(await second.text()).toBe(image.body);
    expect(upstream.calls).toEqual([]);
    expect((await call(`/v2/hub/alpine/manifests/${image.digest}`)).status).toBe(200);
    expect(upstream.calls).toEqual([]);
  });

  it("maps single names to library/ and serves docker's registry-mirrors path style through the same store", async () => {
    const image = await publish("library/busybox", "1");
    expect((await call("/v2/hub/library/busybox/manifests/1")).headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect((await call("/v2/hub/busybox/manifests/1")).headers.get("Docker-Content-Digest")).toBe(image.digest);
  });

  it("streams a missing blob to the client while storing it, then serves it from R2", async () => {
    const image = await publish("library/nginx", "1", 200_000);
    await call("/v2/hub/nginx/manifests/1");
    const first = await call(`/v2/hub/nginx/blobs/${image.layerDigest}`);
    expect(first.status).toBe(200);
    expect(first.headers.get("Content-Length")).toBe("200000");
    expect(await sha256(new Uint8Array(await first.arrayBuffer()))).toBe(image.layerDigest);

    upstream.calls = [];
    const second = await call(`/v2/hub/nginx/blobs/${image.layerDigest}`);
    expect(await sha256(new Uint8Array(await second.arrayBuffer()))).toBe(image.layerDigest);
    expect(upstream.calls).toEqual([]);
  });

  it("caches tokens until they expire, then asks for a new one", async () => {
    const image = await publish("library/tokens", "1");
    upstream.tokenLifetime = 11; // cached for 1 s (renewed 10 s early)
    await call("/v2/hub/tokens/manifests/1");
    await call(`/v2/hub/tokens/blobs/${image.layerDigest}`, { method: "HEAD" });
    expect(upstream.count("GET /token")).toBe(1);
    await new Promise((done) => setTimeout(done, 1100));
    await call(`/v2/hub/tokens/blobs/${image.layerDigest}`);
    expect(upstream.count("GET /token")).toBe(2);
    upstream.tokenLifetime = 300;
  });

  it("authenticates to the token service with configured credentials", async () => {
    const name = "team/tool";
    const layer = randomBytes(100);
    const layerDigest = await sha256(layer);
    upstream.blobs.set(layerDigest, layer);
    const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    const digest = await sha256(body);
    upstream.manifests.set(digest, { body, mediaType: OCI_INDEX });
    upstream.tags.set(`${name}:v1`, digest);
    expect((await call("/v2/private/team/tool/manifests/v1")).status).toBe(200);
    expect((await call(`/v2/private/team/tool/blobs/${layerDigest}`)).status).toBe(200);
  });

  it("proxies the tag list", async () => {
    await publish("library/listed", "a");
    await publish("library/listed", "b");
    expect(await (await call("/v2/hub/listed/tags/list")).json()).toEqual({ name: "hub/listed", tags: ["a", "b"] });
  });
});

describe("tag revalidation", () => {
  it("revalidates an expired tag with a HEAD and downloads nothing when it is unchanged", async () => {
    const image = await publish("library/stable", "1");
    await call("/v2/hub/stable/manifests/1");
    await ageTag("hub/stable", "1");
    upstream.calls = [];
    expect((await call("/v2/hub/stable/manifests/1")).headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect(upstream.calls.filter((c) => !c.startsWith("GET /token"))).toEqual(["HEAD /v2/library/stable/manifests/1"]);
  });

  it("serves the new manifest when the upstream tag moved", async () => {
    await publish("library/moving", "latest");
    await call("/v2/hub/moving/manifests/latest");
    const moved = await publish("library/moving", "latest");
    // Within the TTL the cached digest is served.
    expect((await call("/v2/hub/moving/manifests/latest")).headers.get("Docker-Content-Digest")).not.toBe(moved.digest);
    await ageTag("hub/moving", "latest");
    expect((await call("/v2/hub/moving/manifests/latest")).headers.get("Docker-Content-Digest")).toBe(moved.digest);
  });
});

describe("when the upstream fails", () => {
  for (const fault of [{ kind: "down" }, { kind: "status", status: 503 }, { kind: "status", status: 429 }, { kind: "hang" }] as Fault[]) {
    it(`serves the cached tag, marked stale, when the upstream is ${fault.kind}${fault.status ? ` ${fault.status}` : ""}`, async () => {
      const name = `library/stale-${fault.kind}-${fault.status ?? 0}`;
      const image = await publish(name, "1");
      const local = `hub/${name.slice("library/".length)}`;
      await call(`/v2/${local}/manifests/1`);
      await ageTag(local, "1");
      upstream.fault = fault;
      const response = await call(`/v2/${local}/manifests/1`);
      expect(response.status).toBe(200);
      expect(response.headers.get("Docker-Content-Digest")).toBe(image.digest);
      expect(response.headers.get("X-Mirror-Status")).toBe("stale");
    });
  }

  it("passes on a 429 as TOOMANYREQUESTS with Retry-After when nothing is cached", async () => {
    await publish("library/limited", "1");
    upstream.fault = { kind: "status", status: 429 };
    const response = await call("/v2/hub/limited/manifests/1");
    expect(response.status).toBe(429);
    expect(response.headers.get("Retry-After")).toBe("17");
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("TOOMANYREQUESTS");
  });

  it("answers 502 with an OCI error when the upstream is down and nothing is cached, and 404 when it lacks the image", async () => {
    await publish("library/unreachable", "1");
    upstream.fault = { kind: "down" };
    const down = await call("/v2/hub/unreachable/manifests/1");
    expect(down.status).toBe(502);
    expect(((await down.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UPSTREAM_UNAVAILABLE");
    upstream.fault = null;
    const missing = await call("/v2/hub/does-not-exist/manifests/1");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_UNKNOWN");
  });

  it("never stores a manifest whose bytes do not match the upstream's digest", async () => {
    await publish("library/lying", "1");
    upstream.fault = { kind: "wrong-digest" };
    expect((await call("/v2/hub/lying/manifests/1")).status).toBe(502);
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifests WHERE repository = 'hub/lying'").first<{ n: number }>();
    expect(row!.n).toBe(0);
  });

  it("refuses an upstream manifest larger than MAX_MANIFEST_BYTES without keeping it", async () => {
    const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { padding: "x".repeat(4 * 1024 * 1024 + 1) } });
    const digest = await sha256(body);
    upstream.manifests.set(digest, { body, mediaType: OCI_MANIFEST });
    upstream.tags.set("library/huge:1", digest);
    const response = await call("/v2/hub/huge/manifests/1");
    expect(response.status).toBe(502);
    expect(JSON.stringify(await response.json())).toContain("MAX_MANIFEST_BYTES");
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifests WHERE repository = 'hub/huge'").first<{ n: number }>();
    expect(row!.n).toBe(0);
  });

  for (const kind of ["corrupt", "truncate"] as const) {
    it(`never records a ${kind} blob from upstream`, async () => {
      const image = await publish(`library/${kind}`, "1", 100_000);
      await call(`/v2/hub/${kind}/manifests/1`);
      upstream.fault = { kind };
      const response = await call(`/v2/hub/${kind}/blobs/${image.layerDigest}`).catch(() => null);
      if (response?.status === 200) expect(await sha256(new Uint8Array(await response.arrayBuffer()))).not.toBe(image.layerDigest);
      const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM repository_blobs WHERE digest = ?").bind(image.layerDigest).first<{ n: number }>();
      expect(row!.n).toBe(0);
      // Once the upstream is healthy the blob is fetched again, whole.
      upstream.fault = null;
      const healthy = await call(`/v2/hub/${kind}/blobs/${image.layerDigest}`);
      expect(await sha256(new Uint8Array(await healthy.arrayBuffer()))).toBe(image.layerDigest);
    });
  }
});

describe("concurrent misses", () => {
  it("fetch a blob from upstream once", async () => {
    const image = await publish("library/popular", "1", 1_000_000);
    await call("/v2/hub/popular/manifests/1");
    upstream.fault = { kind: "slow" };
    upstream.calls = [];
    const responses = await Promise.all(Array.from({ length: 5 }, () => call(`/v2/hub/popular/blobs/${image.layerDigest}`)));
    for (const response of responses) expect(await sha256(new Uint8Array(await response.arrayBuffer()))).toBe(image.layerDigest);
    expect(upstream.count(`GET /v2/library/popular/blobs/`)).toBe(1);
  });
});

describe("mirrored namespaces are read-only", () => {
  it("refuses pushes and deletes with DENIED", async () => {
    const image = await publish("library/readonly", "1");
    await call("/v2/hub/readonly/manifests/1");
    for (const [path, method] of [
      ["/v2/hub/readonly/manifests/2", "PUT"],
      ["/v2/hub/readonly/blobs/uploads/", "POST"],
      [`/v2/hub/readonly/manifests/${image.digest}`, "DELETE"],
      [`/v2/hub/readonly/blobs/${image.layerDigest}`, "DELETE"],
    ] as const) {
      const response = await call(path, { method, body: method === "PUT" ? image.body : undefined });
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DENIED");
    }
  });
});
