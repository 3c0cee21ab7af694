import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { GcRecords } from "../../src/storage/gc-records";
import worker from "../../src/index";
import { descriptorOf, OCI_INDEX, ORIGIN, pushBlob, pushImage, pushManifest, putManifest, randomBytes, sha256 } from "./helpers";

async function callWith(vars: Record<string, string>, path: string, init: RequestInit = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), { ...env, ...vars }, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

async function errorOf(response: Response) {
  return ((await response.json()) as { errors: { code: string; message: string; detail: unknown }[] }).errors[0]!;
}

const ADMIN = { Authorization: `Bearer ${env.ADMIN_TOKEN}` };
const usage = async () => (await (await callWith({}, "/admin/usage", { headers: ADMIN })).json()) as { bytes: number; blobs: number };

describe("deletes that would break an image are refused", () => {
  it("refuses deleting a blob a manifest in the repository references, naming the manifest, and allows it once the manifest is gone", async () => {
    const image = await pushImage("integrity/app");
    const digest = await pushManifest("integrity/app", "v1", image);
    const layer = image.layers[0]!.digest;
    const refused = await callWith({}, `/v2/integrity/app/blobs/${layer}`, { method: "DELETE" });
    expect(refused.status).toBe(405);
    const error = await errorOf(refused);
    expect(error.code).toBe("UNSUPPORTED");
    expect(error.message).toContain(digest);
    expect((await callWith({}, `/v2/integrity/app/blobs/${layer}`)).status).toBe(200);
    // Another repository's manifest does not hold this repository's link.
    await pushManifest("integrity/other", "v1", await pushImage("integrity/other"));
    expect((await callWith({}, `/v2/integrity/app/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect((await callWith({}, `/v2/integrity/app/blobs/${layer}`, { method: "DELETE" })).status).toBe(202);
    expect((await callWith({}, `/v2/integrity/app/blobs/${layer}`)).status).toBe(404);
  });

  it("refuses deleting a child manifest of an index by digest, naming the index", async () => {
    const child = await pushImage("integrity/multi");
    const childBody = JSON.stringify(child);
    const childDigest = await pushManifest("integrity/multi", childDigestTag(), childBody);
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...descriptorOf(childBody, childDigest), platform: { os: "linux", architecture: "amd64" } }] };
    const indexDigest = await pushManifest("integrity/multi", "latest", index, OCI_INDEX);
    const refused = await callWith({}, `/v2/integrity/multi/manifests/${childDigest}`, { method: "DELETE" });
    expect(refused.status).toBe(405);
    expect((await errorOf(refused)).message).toContain(indexDigest);
    expect((await callWith({}, `/v2/integrity/multi/manifests/${childDigest}`)).status).toBe(200);
    expect((await callWith({}, `/v2/integrity/multi/manifests/${indexDigest}`, { method: "DELETE" })).status).toBe(202);
    expect((await callWith({}, `/v2/integrity/multi/manifests/${childDigest}`, { method: "DELETE" })).status).toBe(202);
  });

  it("in an IMMUTABLE_TAGS repository, nothing reachable from a tag can be deleted; an unreferenced blob can", async () => {
    const immutable = { IMMUTABLE_TAGS: "integrity/frozen" };
    const image = await pushImage("integrity/frozen");
    const digest = await pushManifest("integrity/frozen", "v1", image);
    for (const blob of [image.config.digest, ...image.layers.map((layer) => layer.digest)]) {
      expect((await callWith(immutable, `/v2/integrity/frozen/blobs/${blob}`, { method: "DELETE" })).status).toBe(405);
    }
    const denied = await callWith(immutable, `/v2/integrity/frozen/manifests/${digest}`, { method: "DELETE" });
    expect(denied.status).toBe(403);
    const loose = await pushBlob("integrity/frozen", randomBytes(100));
    expect((await callWith(immutable, `/v2/integrity/frozen/blobs/${loose}`, { method: "DELETE" })).status).toBe(202);
    expect((await callWith(immutable, `/v2/integrity/frozen/manifests/v1`)).status).toBe(200);
  });
});

let tagCounter = 0;
const childDigestTag = () => `child-${++tagCounter}`;

describe("manifest JSON", () => {
  it("refuses nesting deeper than 64 levels with MANIFEST_INVALID, and accepts unknown fields nested within it", async () => {
    const image = await pushImage("integrity/deep");
    const nest = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
    for (const depth of [1000, 100_000]) {
      const body = JSON.stringify(image).replace(/}$/, `,"x":${nest(depth)}}`);
      const response = await putManifest("integrity/deep", "deep", body);
      expect(response.status).toBe(400);
      expect((await errorOf(response)).code).toBe("MANIFEST_INVALID");
    }
    // Brackets inside strings do not count.
    const shallow = JSON.stringify({ ...image, x: nest(60), annotations: { "a": "[[[[[[[[[[".repeat(20) } });
    expect((await putManifest("integrity/deep", "ok", shallow)).status).toBe(201);
  });
});

describe("storage quota", () => {
  it("is a counter kept with the blob rows: exact under concurrent pushes, and lowered when the collector deletes", async () => {
    const before = await usage();
    const size = 1000;
    const quota = { STORAGE_QUOTA_BYTES: String(before.bytes + 5 * size + 10) };
    const blobs = await Promise.all(Array.from({ length: 12 }, async () => {
      const bytes = randomBytes(size);
      const digest = await sha256(bytes);
      const response = await callWith(quota, `/v2/quota/race/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes, headers: { "Content-Length": String(size) } });
      return { digest, status: response.status };
    }));
    const stored = blobs.filter((blob) => blob.status === 201);
    expect(stored).toHaveLength(5);
    // A record the quota refused leaves no repository behind (nothing to list in the catalog).
    const { BlobRecords } = await import("../../src/storage/blob-records");
    const refused = randomBytes(size);
    const refusedDigest = await sha256(refused);
    await expect(new BlobRecords(env.DB).record("quota/refused-only", { digest: refusedDigest, size, objectKey: `blobs/sha256/${refusedDigest.slice(7)}/x` }, 1)).rejects.toThrow(/quota/);
    expect(await env.DB.prepare("SELECT 1 FROM repositories WHERE name = 'quota/refused-only'").first()).toBeNull();
    expect(blobs.filter((blob) => blob.status === 403)).toHaveLength(7);
    const after = await usage();
    expect(after.bytes).toBe(before.bytes + 5 * size);
    expect(after.blobs).toBe(before.blobs + 5);
    const counted = await env.DB.prepare("SELECT COALESCE(SUM(size), 0) AS bytes, COUNT(*) AS blobs FROM blobs").first<{ bytes: number; blobs: number }>();
    expect(after).toMatchObject(counted!);

    // The collector's delete takes its bytes off the count, in the same transaction.
    const gone = stored[0]!.digest;
    await env.DB.batch([
      env.DB.prepare("DELETE FROM repository_blobs WHERE digest = ?").bind(gone),
      env.DB.prepare("UPDATE blobs SET created_at = 0, deleting_at = 1 WHERE digest = ?").bind(gone),
    ]);
    expect(await new GcRecords(env.DB).delete(gone, Date.now())).not.toBeNull();
    expect(await usage()).toMatchObject({ bytes: after.bytes - size, blobs: after.blobs - 1 });
  });

  it("counts a blob once when its record is repeated (a retry after a lost answer), and not when another copy won", async () => {
    const { BlobRecords } = await import("../../src/storage/blob-records");
    const before = await usage();
    const bytes = randomBytes(700);
    const digest = await sha256(bytes);
    await env.BLOBS.put(`blobs/sha256/${digest.slice(7)}/retried`, bytes);
    const records = new BlobRecords(env.DB);
    const blob = { digest, size: 700, objectKey: `blobs/sha256/${digest.slice(7)}/retried` };
    await records.record("quota/retried", blob);
    await records.record("quota/retried", blob);
    await records.record("quota/other", { ...blob, objectKey: `${blob.objectKey}-second` });
    expect(await usage()).toMatchObject({ bytes: before.bytes + 700, blobs: before.blobs + 1 });
  });

  it("is checked inside the record of a chunked upload too: concurrent uploads cannot overshoot it", async () => {
    const before = await usage();
    const size = 1000;
    const quota = { STORAGE_QUOTA_BYTES: String(before.bytes + 2 * size + 10) };
    const results = await Promise.all(Array.from({ length: 5 }, async () => {
      const bytes = randomBytes(size);
      const location = (await callWith({}, "/v2/quota/chunked-race/blobs/uploads/", { method: "POST" })).headers.get("Location")!;
      expect((await callWith({}, location, { method: "PATCH", body: bytes, headers: { "Content-Length": String(size) } })).status).toBe(202);
      return (await callWith(quota, `${location}?digest=${await sha256(bytes)}`, { method: "PUT" })).status;
    }));
    expect(results.filter((status) => status === 201)).toHaveLength(2);
    expect(results.filter((status) => status === 403)).toHaveLength(3);
    expect((await usage()).bytes).toBe(before.bytes + 2 * size);
  });

  it("counts bytes stored by chunked uploads and is checked before a PATCH takes more room", async () => {
    const before = await usage();
    const quota = { STORAGE_QUOTA_BYTES: String(before.bytes + 1500) };
    const bytes = randomBytes(1000);
    const location = (await callWith(quota, "/v2/quota/chunked/blobs/uploads/", { method: "POST" })).headers.get("Location")!;
    expect((await callWith(quota, location, { method: "PATCH", body: bytes, headers: { "Content-Length": "1000" } })).status).toBe(202);
    expect((await callWith(quota, `${location}?digest=${await sha256(bytes)}`, { method: "PUT" })).status).toBe(201);
    expect((await usage()).bytes).toBe(before.bytes + 1000);
    const next = (await callWith(quota, "/v2/quota/chunked/blobs/uploads/", { method: "POST" })).headers.get("Location")!;
    const refused = await callWith(quota, next, { method: "PATCH", body: randomBytes(1000), headers: { "Content-Length": "1000" } });
    expect(refused.status).toBe(403);
    expect((await errorOf(refused)).message).toContain("STORAGE_QUOTA_BYTES");
  });
});
