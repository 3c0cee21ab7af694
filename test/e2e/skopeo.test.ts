// Real skopeo against `wrangler dev`: images go in from an OCI layout and come back out unchanged, byte for byte.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import {
  buildImage,
  buildIndex,
  findTagged,
  listBlobs,
  MediaTypes,
  sha256Digest,
  type BuiltImage,
  type BuiltIndex,
} from "../support/oci-layout";
import { registryForFile } from "./fixture";
import { MIN_PART_BYTES, type Registry } from "./harness";

const KiB = 1024;
const MiB = 1024 * KiB;

let registry: Registry;
let work: string;

registryForFile("oci-e2e-skopeo-", { vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES) } }, (started, dir) => {
  registry = started;
  work = dir;
});

function skopeo(...args: string[]) {
  return mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 150_000 });
}

const docker = (reference: string) => `docker://${registry.host}/${reference}`;

function registryFetch(path: string, init?: RequestInit): Promise<Response> {
  return fetch(`${registry.url}${path}`, init);
}

async function errorCode(response: Response): Promise<string | undefined> {
  const body = (await response.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}

/** Every blob of `expected` is in the layout at `dir` with exactly the source's bytes, and there is nothing else. */
async function expectSameBlobs(source: string, dir: string, expected: string[]) {
  const sourceBlobs = await listBlobs(source);
  const copied = await listBlobs(dir);
  expect([...copied.keys()].sort()).toEqual([...new Set(expected)].sort());
  for (const [digest, blob] of copied) {
    expect(blob.sha256, `content of ${digest}`).toBe(digest);
    expect(blob).toEqual(sourceBlobs.get(digest));
  }
}

describe("skopeo against wrangler dev", () => {
  let app: BuiltImage;
  let multi: BuiltIndex;
  const appSource = () => join(work, "app-src");

  it("copies a three-layer image into the registry and back out unchanged", async () => {
    app = await buildImage(appSource(), { layers: [1 * KiB, 3 * MiB, 12 * MiB], tag: "v1" });
    // The big layer is more than one part: its upload is cut into R2 multipart parts.
    expect(app.layers[2]!.size).toBeGreaterThan(2 * MIN_PART_BYTES);
    expect(app.layers[0]!.size).toBeLessThan(MIN_PART_BYTES);

    await skopeo("copy", "--retry-times", "0", "--preserve-digests", "--dest-tls-verify=false", `oci:${appSource()}:v1`, docker("e2e/app:v1"));

    // What the registry now serves.
    const head = await registryFetch("/v2/e2e/app/manifests/v1", { method: "HEAD", headers: { Accept: MediaTypes.manifest } });
    expect(head.status).toBe(200);
    expect(head.headers.get("docker-content-digest")).toBe(app.manifest.digest);
    expect(head.headers.get("content-type")).toBe(MediaTypes.manifest);
    expect(head.headers.get("content-length")).toBe(String(app.manifest.size));
    for (const blob of [app.config, ...app.layers]) {
      const response = await registryFetch(`/v2/e2e/app/blobs/${blob.digest}`, { method: "HEAD" });
      expect(response.status, blob.digest).toBe(200);
      expect(response.headers.get("content-length")).toBe(String(blob.size));
      expect(response.headers.get("docker-content-digest")).toBe(blob.digest);
    }
    const big = await registryFetch(`/v2/e2e/app/blobs/${app.layers[2]!.digest}`);
    expect(big.status).toBe(200);
    expect(sha256Digest(new Uint8Array(await big.arrayBuffer()))).toBe(app.layers[2]!.digest);

    const out = join(work, "app-out");
    await skopeo("copy", "--retry-times", "0", "--preserve-digests", "--src-tls-verify=false", docker("e2e/app:v1"), `oci:${out}:v1`);
    const copied = await findTagged(out, "v1");
    expect(copied?.digest).toBe(app.manifest.digest);
    expect(copied?.size).toBe(app.manifest.size);
    expect(copied?.mediaType).toBe(MediaTypes.manifest);
    await expectSameBlobs(appSource(), out, app.blobs);
  });

  it("inspect --raw returns the exact manifest and config bytes", async () => {
    const manifest = await skopeo("inspect", "--retry-times", "0", "--tls-verify=false", "--raw", docker("e2e/app:v1"));
    expect(manifest.stdout.equals(app.manifestBytes)).toBe(true);

    const config = await skopeo("inspect", "--retry-times", "0", "--tls-verify=false", "--raw", "--config", docker("e2e/app:v1"));
    expect(sha256Digest(config.stdout)).toBe(app.config.digest);

    const summary = JSON.parse(
      (await skopeo("inspect", "--retry-times", "0", "--tls-verify=false", docker(`e2e/app@${app.manifest.digest}`))).stdout.toString(),
    ) as { Digest: string; Architecture: string; Os: string; Layers: string[] };
    expect(summary.Digest).toBe(app.manifest.digest);
    expect(summary.Architecture).toBe("amd64");
    expect(summary.Os).toBe("linux");
    expect(summary.Layers).toEqual(app.layers.map((layer) => layer.digest));
  });

  it("list-tags lists both tags after a registry-to-registry copy", async () => {
    await skopeo(
      "copy", "--retry-times", "0", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
      docker("e2e/app:v1"), docker("e2e/app:v2"),
    );
    const listed = JSON.parse((await skopeo("list-tags", "--retry-times", "0", "--tls-verify=false", docker("e2e/app"))).stdout.toString()) as {
      Repository: string;
      Tags: string[];
    };
    expect(listed.Repository).toBe(`${registry.host}/e2e/app`);
    expect([...listed.Tags].sort()).toEqual(["v1", "v2"]);

    const v2 = await registryFetch("/v2/e2e/app/manifests/v2", { headers: { Accept: MediaTypes.manifest } });
    expect(v2.status).toBe(200);
    expect(v2.headers.get("docker-content-digest")).toBe(app.manifest.digest);
    expect(Buffer.from(await v2.arrayBuffer()).equals(app.manifestBytes)).toBe(true);

    const tags = await registryFetch("/v2/e2e/app/tags/list");
    expect(tags.status).toBe(200);
    expect(await tags.json()).toEqual({ name: "e2e/app", tags: ["v1", "v2"] });
  });

  it("copies a multi-arch index with --all and back out unchanged", async () => {
    const source = join(work, "multi-src");
    multi = await buildIndex(source, {
      platforms: [
        { os: "linux", architecture: "amd64" },
        { os: "linux", architecture: "arm64", variant: "v8" },
      ],
      layers: [4 * KiB, 1 * MiB],
      tag: "multi",
    });
    expect(new Set(multi.blobs).size).toBe(1 + 2 * 4);

    await skopeo("copy", "--retry-times", "0", "--all", "--preserve-digests", "--dest-tls-verify=false", `oci:${source}:multi`, docker("e2e/multi:v1"));

    const index = await registryFetch("/v2/e2e/multi/manifests/v1", { headers: { Accept: MediaTypes.index } });
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe(MediaTypes.index);
    expect(index.headers.get("docker-content-digest")).toBe(multi.index.digest);
    expect(Buffer.from(await index.arrayBuffer()).equals(multi.indexBytes)).toBe(true);
    for (const image of multi.images) {
      const response = await registryFetch(`/v2/e2e/multi/manifests/${image.manifest.digest}`, { headers: { Accept: MediaTypes.manifest } });
      expect(response.status).toBe(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(image.manifestBytes)).toBe(true);
    }

    const out = join(work, "multi-out");
    await skopeo("copy", "--retry-times", "0", "--all", "--preserve-digests", "--src-tls-verify=false", docker("e2e/multi:v1"), `oci:${out}:multi`);
    const copied = await findTagged(out, "multi");
    expect(copied?.digest).toBe(multi.index.digest);
    expect(copied?.mediaType).toBe(MediaTypes.index);
    await expectSameBlobs(source, out, multi.blobs);

    // Without --all, skopeo picks the one platform asked for from the index.
    const arm = join(work, "multi-arm64");
    await skopeo(
      "--override-os", "linux", "--override-arch", "arm64", "--override-variant", "v8",
      "copy", "--retry-times", "0", "--preserve-digests", "--src-tls-verify=false", docker("e2e/multi:v1"), `oci:${arm}:arm`,
    );
    const arm64 = multi.images.find((image) => image.platform.architecture === "arm64")!;
    expect((await findTagged(arm, "arm"))?.digest).toBe(arm64.manifest.digest);
    await expectSameBlobs(source, arm, arm64.blobs);
  });

  it("serves referrers of the image: an SBOM pushed with a subject over plain HTTP", async () => {
    const subject = app.manifest;

    // The empty config: exactly the two bytes "{}".
    const empty = Buffer.from("{}");
    const emptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    expect(sha256Digest(empty)).toBe(emptyDigest);
    const sbom = Buffer.from(JSON.stringify({ spdxVersion: "SPDX-2.3", name: "e2e-app", SPDXID: "SPDXRef-DOCUMENT", packages: [] }));
    for (const blob of [empty, sbom]) {
      const digest = sha256Digest(blob);
      const response = await registryFetch(`/v2/e2e/app/blobs/uploads/?digest=${digest}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: blob,
      });
      expect(response.status).toBe(201);
      expect(response.headers.get("docker-content-digest")).toBe(digest);
      expect(response.headers.get("location")).toBe(`/v2/e2e/app/blobs/${digest}`);
    }

    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.manifest,
        artifactType: "application/spdx+json",
        config: { mediaType: MediaTypes.empty, digest: emptyDigest, size: 2 },
        layers: [{ mediaType: "application/spdx+json", digest: sha256Digest(sbom), size: sbom.byteLength }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
      }),
    );
    const digest = sha256Digest(manifest);
    const put = await registryFetch(`/v2/e2e/app/manifests/${digest}`, {
      method: "PUT",
      headers: { "Content-Type": MediaTypes.manifest },
      body: manifest,
    });
    expect(put.status).toBe(201);
    expect(put.headers.get("oci-subject")).toBe(subject.digest);
    expect(put.headers.get("docker-content-digest")).toBe(digest);
    expect(put.headers.get("location")).toBe(`/v2/e2e/app/manifests/${digest}`);

    const expected = {
      mediaType: MediaTypes.manifest,
      digest,
      size: manifest.byteLength,
      artifactType: "application/spdx+json",
      annotations: { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
    };

    const all = await registryFetch(`/v2/e2e/app/referrers/${subject.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers.get("content-type")).toBe(MediaTypes.index);
    expect(all.headers.get("oci-filters-applied")).toBeNull();
    const index = (await all.json()) as { schemaVersion: number; mediaType: string; manifests: unknown[] };
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(MediaTypes.index);
    expect(index.manifests).toEqual([expected]);

    const filtered = await registryFetch(`/v2/e2e/app/referrers/${subject.digest}?artifactType=${encodeURIComponent("application/spdx+json")}`);
    expect(filtered.status).toBe(200);
    expect(filtered.headers.get("oci-filters-applied")).toBe("artifactType");
    expect(((await filtered.json()) as { manifests: unknown[] }).manifests).toEqual([expected]);

    const other = await registryFetch(`/v2/e2e/app/referrers/${subject.digest}?artifactType=${encodeURIComponent("application/vnd.dev.cosign.simplesigning.v1+json")}`);
    expect(other.status).toBe(200);
    expect(other.headers.get("oci-filters-applied")).toBe("artifactType");
    expect(await other.json()).toEqual({ schemaVersion: 2, mediaType: MediaTypes.index, manifests: [] });

    // A digest nothing refers to has an empty list, not an error.
    const none = await registryFetch(`/v2/e2e/app/referrers/${app.config.digest}`);
    expect(none.status).toBe(200);
    expect(((await none.json()) as { manifests: unknown[] }).manifests).toEqual([]);
  });

  it("skopeo delete by digest removes the manifest and its tags", async () => {
    await skopeo("delete", "--retry-times", "0", "--tls-verify=false", docker(`e2e/app@${app.manifest.digest}`));

    const byDigest = await registryFetch(`/v2/e2e/app/manifests/${app.manifest.digest}`, { headers: { Accept: MediaTypes.manifest } });
    expect(byDigest.status).toBe(404);
    expect(await errorCode(byDigest)).toBe("MANIFEST_UNKNOWN");
    for (const tag of ["v1", "v2"]) {
      const byTag = await registryFetch(`/v2/e2e/app/manifests/${tag}`, { headers: { Accept: MediaTypes.manifest } });
      expect(byTag.status, tag).toBe(404);
      expect(await errorCode(byTag)).toBe("MANIFEST_UNKNOWN");
    }

    const tags = await registryFetch("/v2/e2e/app/tags/list");
    expect(tags.status).toBe(200);
    const listed = (await tags.json()) as { name: string; tags: string[] };
    expect(listed.name).toBe("e2e/app");
    expect(listed.tags).not.toContain("v1");
    expect(listed.tags).not.toContain("v2");

    const inspect = await runCommand("skopeo", ["--insecure-policy", "inspect", "--retry-times", "0", "--tls-verify=false", "--raw", docker("e2e/app:v1")]);
    expect(inspect.code).not.toBe(0);
    expect(inspect.stderr).toMatch(/manifest unknown/i);

    // The other repository is untouched.
    const multiIndex = await registryFetch("/v2/e2e/multi/manifests/v1", { method: "HEAD", headers: { Accept: MediaTypes.index } });
    expect(multiIndex.status).toBe(200);
    expect(multiIndex.headers.get("docker-content-digest")).toBe(multi.index.digest);
  });
});
