import { describe, expect, it } from "vitest";
import {
  call,
  descriptorOf,
  DOCKER_LIST,
  DOCKER_MANIFEST,
  expectError,
  OCI_INDEX,
  OCI_MANIFEST,
  pushBlob,
  pushImage,
  pushManifest,
  putManifest,
  randomBytes,
  sha256,
} from "./helpers";

describe("pushing and pulling manifests", () => {
  it("stores an OCI image manifest by tag and serves the exact bytes by tag and by digest", async () => {
    const manifest = await pushImage("manifests/oci");
    // Unusual but valid formatting must survive byte for byte.
    const body = JSON.stringify(manifest, null, 3) + "\n";
    const response = await putManifest("manifests/oci", "v1", body);
    expect(response.status).toBe(201);
    const digest = await sha256(body);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(response.headers.get("Location")).toBe(`/v2/manifests/oci/manifests/${digest}`);

    for (const reference of ["v1", digest]) {
      const pulled = await call(`/v2/manifests/oci/manifests/${reference}`, { headers: { Accept: OCI_MANIFEST } });
      expect(pulled.status).toBe(200);
      expect(pulled.headers.get("Content-Type")).toBe(OCI_MANIFEST);
      expect(pulled.headers.get("Docker-Content-Digest")).toBe(digest);
      expect(pulled.headers.get("Content-Length")).toBe(String(new TextEncoder().encode(body).byteLength));
      expect(await pulled.text()).toBe(body);
    }
    const head = await call("/v2/manifests/oci/manifests/v1", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await head.text()).toBe("");
  });

  it("stores a manifest pushed by digest, with no tag", async () => {
    const manifest = JSON.stringify(await pushImage("manifests/bydigest"));
    const digest = await sha256(manifest);
    expect((await putManifest("manifests/bydigest", digest, manifest)).status).toBe(201);
    expect((await call(`/v2/manifests/bydigest/manifests/${digest}`)).status).toBe(200);
    expect(await (await call("/v2/manifests/bydigest/tags/list")).json()).toEqual({ name: "manifests/bydigest", tags: [] });
  });

  it("accepts Docker schema 2 manifests and manifest lists", async () => {
    const image = await pushImage("manifests/docker");
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { ...image.config, mediaType: "application/vnd.docker.container.image.v1+json" },
      layers: image.layers.map((layer) => ({ ...layer, mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip" })),
    };
    const digest = await pushManifest("manifests/docker", "amd64", manifest, DOCKER_MANIFEST);
    const list = {
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: [{ ...descriptorOf(JSON.stringify(manifest), digest, DOCKER_MANIFEST), platform: { architecture: "amd64", os: "linux" } }],
    };
    await pushManifest("manifests/docker", "latest", list, DOCKER_LIST);
    const pulled = await call("/v2/manifests/docker/manifests/latest");
    expect(pulled.headers.get("Content-Type")).toBe(DOCKER_LIST);
  });

  it("accepts an OCI index whose manifests are in the repository", async () => {
    const amd64 = JSON.stringify(await pushImage("manifests/index"));
    const arm64 = JSON.stringify(await pushImage("manifests/index"));
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...descriptorOf(amd64, await pushManifest("manifests/index", await sha256(amd64), amd64)), platform: { architecture: "amd64", os: "linux" } },
        { ...descriptorOf(arm64, await pushManifest("manifests/index", await sha256(arm64), arm64)), platform: { architecture: "arm64", os: "linux" } },
      ],
    };
    await pushManifest("manifests/index", "multi", index, OCI_INDEX);
    expect((await call("/v2/manifests/index/manifests/multi")).headers.get("Content-Type")).toBe(OCI_INDEX);
  });

  it("accepts an artifact manifest with artifactType and the empty config", async () => {
    const empty = await pushBlob("manifests/artifact", "{}");
    const layer = await pushBlob("manifests/artifact", "artifact payload");
    const artifact = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "application/vnd.example.thing",
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 },
      layers: [{ mediaType: "application/octet-stream", digest: layer, size: 16 }],
    };
    await pushManifest("manifests/artifact", "thing", artifact);
  });

  it("keeps manifests that are too large for a D1 row (4 MiB) byte for byte", async () => {
    const manifest = await pushImage("manifests/large", [10]);
    const padded = { ...manifest, annotations: { padding: "x".repeat(4 * 1024 * 1024 - 1024) } };
    const body = JSON.stringify(padded);
    const digest = await pushManifest("manifests/large", "big", body);
    const pulled = await call(`/v2/manifests/large/manifests/${digest}`);
    expect(pulled.headers.get("Content-Length")).toBe(String(body.length));
    expect(await sha256(new Uint8Array(await pulled.arrayBuffer()))).toBe(digest);
  });

  it("replaces what a tag points to when it is pushed again", async () => {
    const first = await pushManifest("manifests/retag", "latest", await pushImage("manifests/retag"));
    const second = await pushManifest("manifests/retag", "latest", await pushImage("manifests/retag"));
    expect(first).not.toBe(second);
    expect((await call("/v2/manifests/retag/manifests/latest")).headers.get("Docker-Content-Digest")).toBe(second);
    expect((await call(`/v2/manifests/retag/manifests/${first}`)).status).toBe(200);
  });
});

describe("refusing bad manifests, leaving what was there", () => {
  async function expectUntouched(repository: string, tag: string, digest: string) {
    const response = await call(`/v2/${repository}/manifests/${tag}`);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
  }

  it("rejects malformed JSON, wrong shapes and unknown media types with MANIFEST_INVALID", async () => {
    const repository = "bad/manifests";
    const good = await pushManifest(repository, "stable", await pushImage(repository));
    const image = await pushImage(repository);
    const cases: [string, string][] = [
      ["{not json", OCI_MANIFEST],
      ["[]", OCI_MANIFEST],
      [JSON.stringify({ ...image, schemaVersion: 1 }), OCI_MANIFEST],
      [JSON.stringify({ ...image, layers: "not a list" }), OCI_MANIFEST],
      [JSON.stringify({ ...image, config: { ...image.config, size: -1 } }), OCI_MANIFEST],
      [JSON.stringify({ ...image, config: { ...image.config, digest: "sha256:nothex" } }), OCI_MANIFEST],
      [JSON.stringify({ ...image, mediaType: "application/vnd.example.unknown+json" }), "application/vnd.example.unknown+json"],
      [JSON.stringify({ ...image, mediaType: undefined }), "text/plain"],
      [JSON.stringify(image), OCI_INDEX],
      [JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX }), OCI_INDEX],
    ];
    for (const [body, contentType] of cases) {
      await expectError(await putManifest(repository, "stable", body, contentType), 400, "MANIFEST_INVALID");
    }
    await expectUntouched(repository, "stable", good);
  });

  it("rejects a manifest referencing a blob missing from the repository with MANIFEST_BLOB_UNKNOWN", async () => {
    const image = await pushImage("bad/blobs");
    const stable = await pushManifest("bad/blobs", "stable", image);
    const elsewhere = await pushBlob("bad/elsewhere", randomBytes(64));
    const missing = { ...image, layers: [...image.layers, { mediaType: image.layers[0]!.mediaType, digest: elsewhere, size: 64 }] };
    const response = await putManifest("bad/blobs", "stable", missing);
    const body = await expectError(response, 400, "MANIFEST_BLOB_UNKNOWN");
    expect(JSON.stringify(body.errors[0]!.detail)).toContain(elsewhere);
    await expectUntouched("bad/blobs", "stable", stable);
    await expectError(await call(`/v2/bad/blobs/manifests/${await sha256(JSON.stringify(missing))}`), 404, "MANIFEST_UNKNOWN");
  });

  it("rejects an index referencing a manifest missing from the repository with MANIFEST_BLOB_UNKNOWN", async () => {
    const child = JSON.stringify(await pushImage("bad/index-child"));
    const childDigest = await pushManifest("bad/index-child", "child", child);
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptorOf(child, childDigest)] };
    await expectError(await putManifest("bad/index", "multi", index, OCI_INDEX), 400, "MANIFEST_BLOB_UNKNOWN");
    await expectError(await call("/v2/bad/index/manifests/multi"), 404, "MANIFEST_UNKNOWN");
  });

  it("rejects a manifest pushed by a digest that is not its own with DIGEST_INVALID", async () => {
    const manifest = JSON.stringify(await pushImage("bad/digest"));
    const wrong = await sha256("other");
    await expectError(await putManifest("bad/digest", wrong, manifest), 400, "DIGEST_INVALID");
    await expectError(await call(`/v2/bad/digest/manifests/${wrong}`), 404, "MANIFEST_UNKNOWN");
  });

  it("rejects a Content-Type that contradicts the manifest's mediaType", async () => {
    const manifest = await pushImage("bad/type");
    await expectError(await putManifest("bad/type", "x", manifest, DOCKER_MANIFEST), 400, "MANIFEST_INVALID");
  });

  it("refuses a manifest over the size limit with 413", async () => {
    const body = JSON.stringify({ schemaVersion: 2, padding: "x".repeat(4 * 1024 * 1024 + 1) });
    await expectError(await putManifest("bad/huge", "x", body), 413, "REQUEST_TOO_LARGE");
  });
});

describe("names and references", () => {
  it("accepts nested names like team/app/api", async () => {
    await pushManifest("team/app/api", "v1", await pushImage("team/app/api"));
    expect((await call("/v2/team/app/api/manifests/v1")).status).toBe(200);
  });

  it("rejects invalid repository names with NAME_INVALID", async () => {
    // "a/../b" and "a/%2e%2e/b" are dot segments that the URL parser resolves before routing (to "b");
    // the encoded slash below keeps ".." inside the name, where it must be refused.
    for (const name of ["Upper/case", "a/..b", "a/%2e%2e%2fb", "a%2f..%2fb", "-lead", "a//b", "trailing_", "a".repeat(256)]) {
      await expectError(await call(`/v2/${name}/manifests/latest`), 400, "NAME_INVALID");
      await expectError(await call(`/v2/${name}/blobs/uploads/`, { method: "POST" }), 400, "NAME_INVALID");
    }
  });

  it("rejects invalid tags with TAG_INVALID", async () => {
    const manifest = await pushImage("names/tags");
    for (const tag of ["t".repeat(129), ".dot", "-dash", "bad%21tag"]) {
      await expectError(await putManifest("names/tags", tag, manifest), 400, "TAG_INVALID");
    }
    await pushManifest("names/tags", "t".repeat(128), manifest);
  });

  it("answers an unknown tag or digest with MANIFEST_UNKNOWN", async () => {
    await pushManifest("names/unknown", "v1", await pushImage("names/unknown"));
    await expectError(await call("/v2/names/unknown/manifests/v2"), 404, "MANIFEST_UNKNOWN");
    await expectError(await call(`/v2/names/unknown/manifests/${await sha256("x")}`), 404, "MANIFEST_UNKNOWN");
  });
});

describe("deleting manifests", () => {
  it("by digest removes the manifest and its tags", async () => {
    const digest = await pushManifest("delete/manifest", "v1", await pushImage("delete/manifest"));
    expect((await call(`/v2/delete/manifest/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    await expectError(await call(`/v2/delete/manifest/manifests/${digest}`), 404, "MANIFEST_UNKNOWN");
    await expectError(await call("/v2/delete/manifest/manifests/v1"), 404, "MANIFEST_UNKNOWN");
    await expectError(await call(`/v2/delete/manifest/manifests/${digest}`, { method: "DELETE" }), 404, "MANIFEST_UNKNOWN");
  });

  it("by tag removes only the tag", async () => {
    const digest = await pushManifest("delete/tag", "v1", await pushImage("delete/tag"));
    expect((await call("/v2/delete/tag/manifests/v1", { method: "DELETE" })).status).toBe(202);
    await expectError(await call("/v2/delete/tag/manifests/v1"), 404, "MANIFEST_UNKNOWN");
    expect((await call(`/v2/delete/tag/manifests/${digest}`)).status).toBe(200);
  });
});
