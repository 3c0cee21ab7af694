import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { OCI_MANIFEST, ORIGIN, randomBytes, sha256 } from "./helpers";

// An upstream shaped like Docker Hub: the registry (registry.hub.test) sends clients to a token service on another
// host (auth.hub.test), which needs the mirror's credentials for private repositories; blobs are redirected to a CDN
// (cdn.hub.test) that must never see them.
const REGISTRY = "https://registry.hub.test";
const AUTH = "https://auth.hub.test";
const CDN = "https://cdn.hub.test";
// Where a hostile redirect target would like the password sent.
const COLLECTOR = "https://collector.evil.test";
const PASSWORD = "hub-password";

const seen: { url: string; authorization: string | null }[] = [];
const blobs = new Map<string, Uint8Array>();
const manifests = new Map<string, string>();
const hostileRedirects = new Set<string>();

function tokenService(request: Request): Response {
  const url = new URL(request.url);
  const scope = url.searchParams.get("scope") ?? "";
  // A hostile or broken token service: an endless answer, or one that is not JSON.
  if (scope.includes(":hostile/huge")) return new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(64 * 1024).fill(120)) }));
  if (scope.includes(":hostile/garbage")) return new Response("<html>not a token</html>");
  const authorized = request.headers.get("Authorization") === `Basic ${btoa(`mirror-user:${PASSWORD}`)}`;
  // Anonymous callers get tokens for public repositories only, as Docker Hub's token service does.
  if (scope.includes(":private/") && !authorized) return Response.json({ token: "anonymous", expires_in: 300 });
  return Response.json({ token: `${authorized ? "user" : "anonymous"}:${scope}`, expires_in: 300 });
}

function registry(request: Request): Response {
  const url = new URL(request.url);
  const name = url.pathname.split(/\/(?:manifests|blobs)\//)[0]!.slice(4);
  const needed = name.startsWith("private/") ? `user:repository:${name}:pull` : `anonymous:repository:${name}:pull`;
  const bearer = request.headers.get("Authorization")?.replace(/^Bearer /, "");
  if (bearer !== needed && bearer !== `user:repository:${name}:pull`) {
    return Response.json({ errors: [{ code: "UNAUTHORIZED" }] }, {
      status: 401,
      headers: { "WWW-Authenticate": `Bearer realm="${AUTH}/token",service="registry.hub.test",scope="repository:${name}:pull"` },
    });
  }
  const reference = url.pathname.split("/").at(-1)!;
  if (url.pathname.includes("/manifests/")) {
    const body = manifests.get(`${name}:${reference}`);
    if (!body) return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN" }] }, { status: 404 });
    return new Response(request.method === "HEAD" ? null : body, { headers: { "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": manifests.get(`${name}:digest-of:${reference}`) ?? "" } });
  }
  const bytes = blobs.get(reference);
  if (!bytes) return Response.json({ errors: [{ code: "BLOB_UNKNOWN" }] }, { status: 404 });
  if (request.method === "HEAD") return new Response(null, { headers: { "Content-Length": String(bytes.byteLength), "Docker-Content-Digest": reference } });
  const hostile = hostileRedirects.has(reference) ? "&hostile=1" : "";
  return new Response(null, { status: 307, headers: { Location: `${CDN}/blobs/${reference}?signed=1${hostile}` } });
}

function cdn(request: Request): Response {
  if (new URL(request.url).searchParams.has("hostile")) {
    return new Response("no", { status: 401, headers: { "WWW-Authenticate": `Bearer realm="${COLLECTOR}/token",service="x"` } });
  }
  const bytes = blobs.get(new URL(request.url).pathname.split("/").at(-1)!);
  return bytes ? new Response(bytes, { headers: { "Content-Length": String(bytes.byteLength) } }) : new Response("no", { status: 404 });
}

const realFetch = globalThis.fetch;
beforeAll(() => {
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const origin = new URL(request.url).origin;
    const handler = { [REGISTRY]: registry, [AUTH]: tokenService, [CDN]: cdn, [COLLECTOR]: () => Response.json({ token: "stolen" }) }[origin];
    if (!handler) return realFetch(input, init);
    seen.push({ url: request.url, authorization: request.headers.get("Authorization") });
    return handler(request);
  });
});
afterAll(() => vi.restoreAllMocks());

const mirrorEnv = {
  ...env,
  AUTH_MODE: "open",
  MIRRORS: JSON.stringify([{ prefix: "hub", upstream: REGISTRY, library: true, username: "mirror-user", passwordSecret: "MIRROR_HUB_PASSWORD" }]),
  MIRROR_HUB_PASSWORD: PASSWORD,
};

async function call(path: string, init?: RequestInit) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), mirrorEnv, ctx);
  const body = new Uint8Array(await response.arrayBuffer());
  await waitOnExecutionContext(ctx);
  return { status: response.status, headers: response.headers, body };
}

async function publish(name: string, tag: string) {
  const layer = randomBytes(5000);
  const config = new TextEncoder().encode(`{"architecture":"amd64","os":"linux","n":"${crypto.randomUUID()}"}`);
  const [layerDigest, configDigest] = [await sha256(layer), await sha256(config)];
  blobs.set(layerDigest, layer);
  blobs.set(configDigest, config);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.byteLength },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size: layer.byteLength }],
  });
  const digest = await sha256(body);
  manifests.set(`${name}:${tag}`, body);
  manifests.set(`${name}:${digest}`, body);
  manifests.set(`${name}:digest-of:${tag}`, digest);
  manifests.set(`${name}:digest-of:${digest}`, digest);
  return { digest, layerDigest };
}

describe("an upstream whose token realm is on another host (Docker Hub's shape)", () => {
  it("sends the configured credentials to the realm, pulls a private image with them, and never to the blob CDN", async () => {
    const image = await publish("private/app", "1");
    seen.length = 0;
    const manifest = await call("/v2/hub/private/app/manifests/1");
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get("Docker-Content-Digest")).toBe(image.digest);
    const layer = await call(`/v2/hub/private/app/blobs/${image.layerDigest}`);
    expect(layer.status).toBe(200);
    expect(await sha256(layer.body)).toBe(image.layerDigest);

    const toAuth = seen.filter((request) => request.url.startsWith(AUTH));
    expect(toAuth.length).toBeGreaterThan(0);
    for (const request of toAuth) expect(request.authorization).toBe(`Basic ${btoa(`mirror-user:${PASSWORD}`)}`);
    const toCdn = seen.filter((request) => request.url.startsWith(CDN));
    expect(toCdn.length).toBeGreaterThan(0);
    for (const request of toCdn) expect(request.authorization).toBeNull();
    // The registry host itself only ever sees bearer tokens, never the password.
    for (const request of seen.filter((r) => r.url.startsWith(REGISTRY))) expect(request.authorization ?? "").not.toContain("Basic");
  });

  it("never answers a challenge from where the upstream redirected: the password does not follow a redirect", async () => {
    const image = await publish("private/redirected", "1");
    hostileRedirects.add(image.layerDigest);
    seen.length = 0;
    expect((await call("/v2/hub/private/redirected/manifests/1")).status).toBe(200);
    const layer = await call(`/v2/hub/private/redirected/blobs/${image.layerDigest}`);
    expect(layer.status).toBeGreaterThanOrEqual(400);
    expect(seen.filter((request) => request.url.startsWith(COLLECTOR))).toEqual([]);
    for (const request of seen.filter((r) => !r.url.startsWith(AUTH))) expect(request.authorization ?? "").not.toContain("Basic");
  });

  it("answers 502 when the token service's answer is endless or not JSON, reading at most a bounded amount of it", async () => {
    for (const name of ["hostile/huge", "hostile/garbage"]) {
      const response = await call(`/v2/hub/${name}/manifests/1`);
      expect(response.status, name).toBe(502);
      expect(JSON.parse(new TextDecoder().decode(response.body)).errors[0].code).toBe("UPSTREAM_UNAVAILABLE");
    }
  });

  it("pulls public images through the same mirror", async () => {
    const image = await publish("library/alpine", "3");
    const manifest = await call("/v2/hub/alpine/manifests/3");
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get("Docker-Content-Digest")).toBe(image.digest);
  });
});
