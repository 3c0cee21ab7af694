import { describe, expect, it } from "vitest";
import { call as callOpen, DOCKER_MANIFEST, OCI_MANIFEST, pushBlob, pushImage, pushManifest, putManifest, randomBytes } from "./helpers";
import { basic, call, createToken } from "./token-auth";

async function codeOf(response: Response): Promise<string | undefined> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0]?.code;
}

describe("OCI conformance: a manifest reference that is no valid tag", () => {
  it("is 404 MANIFEST_UNKNOWN on GET and HEAD (a manifest not found), and stays 400 TAG_INVALID on PUT", async () => {
    const image = await pushImage("edges/names");
    await pushManifest("edges/names", "v1", image);
    for (const reference of [".INVALID_MANIFEST_NAME", "-dash", "a".repeat(129), "tag%20space"]) {
      const got = await callOpen(`/v2/edges/names/manifests/${reference}`);
      expect(got.status).toBe(404);
      expect(await codeOf(got)).toBe("MANIFEST_UNKNOWN");
      expect((await callOpen(`/v2/edges/names/manifests/${reference}`, { method: "HEAD" })).status).toBe(404);
    }
    const put = await putManifest("edges/names", ".INVALID_MANIFEST_NAME", image);
    expect(put.status).toBe(400);
    expect(await codeOf(put)).toBe("TAG_INVALID");
  });
});

describe("automatic cross-mount (mount without from)", () => {
  it("mounts from a repository the caller may pull, and answers a blob held only where it may not as it answers one stored nowhere", async () => {
    const shared = await pushBlob("edges/source", randomBytes(500));
    const secret = await pushBlob("edges/secret", randomBytes(500));
    const absent = `sha256:${"d".repeat(64)}`;
    const { token } = await createToken("mounter", [
      { repository: "edges/source", actions: ["pull"] },
      { repository: "edges/target", actions: ["pull", "push"] },
    ]);
    const mount = (digest: string) => call(`/v2/edges/target/blobs/uploads/?mount=${digest}`, { method: "POST", auth: basic(token) });
    const mounted = await mount(shared);
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get("Docker-Content-Digest")).toBe(shared);
    expect((await call(`/v2/edges/target/blobs/${shared}`, { auth: basic(token) })).status).toBe(200);
    const [hidden, nowhere] = [await mount(secret), await mount(absent)];
    expect([hidden.status, nowhere.status]).toEqual([202, 202]);
    expect(hidden.headers.get("Location")).toMatch(/^\/v2\/edges\/target\/blobs\/uploads\//);
    expect((await call(`/v2/edges/target/blobs/${secret}`, { auth: basic(token) })).status).toBe(404);
  });
});

describe("content negotiation", () => {
  it("answers 404 to a client whose Accept names manifest types but not the stored OCI type, as Distribution does", async () => {
    const oci = await pushManifest("edges/negotiate", "oci", await pushImage("edges/negotiate"));
    const dockerImage = { ...(await pushImage("edges/negotiate")), mediaType: DOCKER_MANIFEST };
    dockerImage.config.mediaType = "application/vnd.docker.container.image.v1+json";
    await pushManifest("edges/negotiate", "docker", dockerImage, DOCKER_MANIFEST);
    const get = (reference: string, accept?: string) =>
      callOpen(`/v2/edges/negotiate/manifests/${reference}`, { headers: accept ? { Accept: accept } : {} });
    const dockerOnly = `${DOCKER_MANIFEST}, application/vnd.docker.distribution.manifest.list.v2+json`;
    const refused = await get("oci", dockerOnly);
    expect(refused.status).toBe(404);
    expect(await codeOf(refused)).toBe("MANIFEST_UNKNOWN");
    expect((await get(oci, dockerOnly)).status).toBe(404);
    expect((await get("oci", `${dockerOnly}, ${OCI_MANIFEST}`)).status).toBe(200);
    expect((await get("oci", `${dockerOnly}, */*`)).status).toBe(200);
    expect((await get("oci")).status).toBe(200);
    expect((await get("oci", "application/json")).status).toBe(200);
    // Docker types are served whatever the client asks for.
    expect((await get("docker", OCI_MANIFEST)).status).toBe(200);
  });
});

