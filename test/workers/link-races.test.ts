import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { GcRecords } from "../../src/storage/gc-records";
import worker from "../../src/index";
import { interleavings, type BlobRecord } from "../../src/storage/blob-records";
import { manifestInterleavings } from "../../src/storage/manifest-records";
import { MiB, ORIGIN, randomBytes, sha256 } from "./helpers";

// Deterministic interleavings: a collector phase runs exactly between an operation's read of a blob row and the write
// that depends on it (the storage layer's hooks), and every manifest the registry accepts must then pull back whole.

async function send(path: string, init: RequestInit = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

async function pushWhole(repository: string, bytes: Uint8Array): Promise<string> {
  const digest = await sha256(bytes);
  const response = await send(`/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes, headers: { "Content-Length": String(bytes.byteLength) } });
  expect(response.status, await response.clone().text()).toBe(201);
  return digest;
}

const gc = () => new GcRecords(env.DB);

/**
 * The collector's phases against one blob that nothing references or links any more, each step as the collector
 * takes it (src/gc/collector.ts): mark, then delete the rows, then delete the bytes.
 */
const PHASES: Record<string, (digest: string) => Promise<void>> = {
  marked: async (digest) => {
    await env.DB.prepare("DELETE FROM repository_blobs WHERE digest = ?").bind(digest).run();
    await env.DB.prepare("UPDATE blobs SET created_at = 0 WHERE digest = ?").bind(digest).run();
    expect(await gc().mark([digest], Date.now(), 1)).toBe(1);
  },
  "rows deleted": async (digest) => {
    await PHASES.marked!(digest);
    expect(await gc().delete(digest, Date.now())).not.toBeNull();
  },
  "rows and bytes deleted": async (digest) => {
    const row = await env.DB.prepare("SELECT object_key FROM blobs WHERE digest = ?").bind(digest).first<{ object_key: string }>();
    await PHASES["rows deleted"]!(digest);
    await env.BLOBS.delete(row!.object_key);
  },
};

/** Runs `phase` once, the first time the hook fires for `digest`. */
function once(digest: string, phase: (digest: string) => Promise<void>) {
  let fired = false;
  return async (blob: BlobRecord) => {
    if (fired || blob.digest !== digest) return;
    fired = true;
    await phase(digest);
  };
}

/** Pushes a one-layer image referencing `layer` and, when accepted, checks it pulls back byte for byte. */
async function pushesAndPulls(repository: string, layer: { digest: string; bytes: Uint8Array }): Promise<number> {
  const config = await pushWhole(repository, new TextEncoder().encode(`{"architecture":"amd64","os":"linux","n":"${layer.digest}"}`));
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 0 },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layer.digest, size: layer.bytes.byteLength }],
  };
  manifest.config.size = Number((await send(`/v2/${repository}/blobs/${config}`, { method: "HEAD" })).headers.get("Content-Length"));
  const put = await send(`/v2/${repository}/manifests/v1`, { method: "PUT", headers: { "Content-Type": manifest.mediaType }, body: JSON.stringify(manifest) });
  if (put.status === 201) {
    const pulled = await send(`/v2/${repository}/blobs/${layer.digest}`);
    expect(pulled.status).toBe(200);
    expect(await sha256(new Uint8Array(await pulled.arrayBuffer()))).toBe(layer.digest);
  }
  return put.status;
}

afterEach(() => {
  delete interleavings.beforeLink;
  delete interleavings.beforeRecord;
  delete manifestInterleavings.beforeInsert;
});

describe("a delete in the middle of a manifest push", () => {
  it("of a blob the manifest references: the push is refused (MANIFEST_BLOB_UNKNOWN), nothing dangles", async () => {
    const layer = randomBytes(2000);
    const layerDigest = await pushWhole("races/push-delete", layer);
    const config = await pushWhole("races/push-delete", new TextEncoder().encode('{"architecture":"amd64","os":"linux"}'));
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 37 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size: 2000 }],
    };
    manifestInterleavings.beforeInsert = async () => {
      delete manifestInterleavings.beforeInsert;
      expect((await send(`/v2/races/push-delete/blobs/${layerDigest}`, { method: "DELETE" })).status).toBe(202);
    };
    const put = await send("/v2/races/push-delete/manifests/v1", { method: "PUT", headers: { "Content-Type": manifest.mediaType }, body: JSON.stringify(manifest) });
    expect(put.status).toBe(400);
    expect(((await put.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_BLOB_UNKNOWN");
    expect((await send("/v2/races/push-delete/manifests/v1")).status).toBe(404);
  });
});

describe.each(Object.keys(PHASES))("a collector that has the blob %s in the middle of", (phaseName) => {
  const phase = PHASES[phaseName]!;

  it("a mount: the mount is refused (the client uploads) or keeps a live blob, never a row without bytes", async () => {
    const bytes = randomBytes(3000);
    const digest = await pushWhole("races/source", bytes);
    interleavings.beforeLink = once(digest, phase);
    const mount = await send(`/v2/races/mounted-${phaseName.length}/blobs/uploads/?mount=${digest}&from=races/source`, { method: "POST" });
    const row = await env.DB.prepare("SELECT object_key FROM blobs WHERE digest = ?").bind(digest).first<{ object_key: string }>();
    if (mount.status === 201) {
      expect(row).not.toBeNull();
      expect(await env.BLOBS.head(row!.object_key)).not.toBeNull();
    } else {
      expect(mount.status).toBe(202);
      // Deleted: no row came back pointing at the deleted bytes, so the next upload stores its own.
      expect(row).toBeNull();
      expect(await send(`/v2/races/mounted-${phaseName.length}/blobs/${digest}`, { method: "HEAD" }).then((r) => r.status)).toBe(404);
      await pushWhole(`races/mounted-${phaseName.length}`, bytes);
    }
    expect(await pushesAndPulls(`races/mounted-${phaseName.length}`, { digest, bytes })).toBe(201);
  });

  it("a monolithic push of bytes already stored: its own bytes are kept when the stored copy goes", async () => {
    const bytes = randomBytes(3000);
    const digest = await pushWhole("races/first", bytes);
    interleavings.beforeRecord = once(digest, phase);
    await pushWhole("races/second", bytes);
    expect(await pushesAndPulls("races/second", { digest, bytes })).toBe(201);
  });

  it("a chunked upload's completion that finds the digest stored: it links it, or stores its own bytes", async () => {
    const bytes = randomBytes(6 * MiB);
    const digest = await pushWhole("races/chunked-first", bytes);
    interleavings.beforeLink = once(digest, phase);
    const start = await send("/v2/races/chunked/blobs/uploads/", { method: "POST" });
    const location = start.headers.get("Location")!;
    const patch = await send(location, { method: "PATCH", body: bytes, headers: { "Content-Length": String(bytes.byteLength), "Content-Range": `0-${bytes.byteLength - 1}` } });
    expect(patch.status).toBe(202);
    const put = await send(`${location}?digest=${digest}`, { method: "PUT" });
    expect(put.status, await put.clone().text()).toBe(201);
    expect(await pushesAndPulls("races/chunked", { digest, bytes })).toBe(201);
  });
});
