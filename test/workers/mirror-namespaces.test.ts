import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { OCI_MANIFEST, ORIGIN, pushImage, pushManifest, sha256 } from "./helpers";

// containerd's hosts.toml mirrors add ?ns=<registry host> to every request: one endpoint mirrors every registry.
const HUB = "https://hub-registry.test";
const GHCR = "https://ghcr-registry.test";
const published = new Map<string, { body: string; digest: string }>();
const asked: string[] = [];

async function publish(origin: string, name: string, tag: string) {
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"0".repeat(64)}`, size: 2 },
    layers: [],
    annotations: { origin, name },
  });
  const digest = await sha256(body);
  published.set(`${origin}/v2/${name}/manifests/${tag}`, { body, digest });
  published.set(`${origin}/v2/${name}/manifests/${digest}`, { body, digest });
  return digest;
}

const realFetch = globalThis.fetch;
beforeAll(() => {
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.origin !== HUB && url.origin !== GHCR) return realFetch(input, init);
    asked.push(`${url.origin}${url.pathname}`);
    const found = published.get(`${url.origin}${url.pathname}`);
    if (!found) return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN" }] }, { status: 404 });
    return new Response(request.method === "HEAD" ? null : found.body, { headers: { "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": found.digest } });
  });
});
afterAll(() => vi.restoreAllMocks());

const mirrorEnv = {
  ...env,
  AUTH_MODE: "open",
  MIRRORS: JSON.stringify([
    { prefix: "hub", upstream: HUB, hosts: ["docker.io", "registry-1.docker.io"] },
    { prefix: "ghcr", upstream: GHCR, hosts: ["ghcr.io"] },
  ]),
};

async function get(path: string) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`), mirrorEnv, ctx);
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { status: response.status, digest: response.headers.get("Docker-Content-Digest"), text };
}

describe("one endpoint for every registry, routed by containerd's ?ns=", () => {
  it("serves each registry's images from its own mirror, under that mirror's prefix", async () => {
    const alpine = await publish(HUB, "library/alpine", "3");
    const tool = await publish(GHCR, "org/tool", "1");
    expect(await get("/v2/library/alpine/manifests/3?ns=docker.io")).toMatchObject({ status: 200, digest: alpine });
    expect(await get("/v2/org/tool/manifests/1?ns=ghcr.io")).toMatchObject({ status: 200, digest: tool });
    // The same content under the prefix, without ns: one store.
    asked.length = 0;
    expect(await get(`/v2/hub/library/alpine/manifests/${alpine}`)).toMatchObject({ status: 200, digest: alpine });
    expect(await get(`/v2/ghcr/org/tool/manifests/${tool}`)).toMatchObject({ status: 200, digest: tool });
    expect(asked).toEqual([]);
  });

  it("answers NAME_UNKNOWN for a registry it does not mirror (containerd then asks the next host), and serves its own for its own host", async () => {
    const unknown = await get("/v2/library/alpine/manifests/3?ns=quay.io");
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.text).errors[0].code).toBe("NAME_UNKNOWN");
    const own = await pushManifest("local/app", "v1", await pushImage("local/app"));
    expect(await get(`/v2/local/app/manifests/v1?ns=${new URL(ORIGIN).host}`)).toMatchObject({ status: 200, digest: own });
  });
});
