// BLOB_REDIRECT=public with real skopeo: large layers are answered with a 307 to the bucket's public URL, and skopeo
// follows it (with its Range requests) to bytes that hash to the pushed digests. The bucket is a bare Worker serving
// the registry's local R2 (test/support/public-bucket), as an r2.dev or custom-domain URL would in production.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun } from "../support/command";
import { buildImage, findTagged, listBlobs } from "../support/oci-layout";
import { startPublicBucket, startRegistry, type Registry } from "./harness";

const MiB = 1024 * 1024;

let work: string;
let bucket: Awaited<ReturnType<typeof startPublicBucket>>;
let registry: Registry;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-redirect-"));
  const state = join(work, "state");
  bucket = await startPublicBucket(state);
  registry = await startRegistry({
    stateDir: state,
    // Every read logged: the test reads the request log to see how each GET was answered.
    vars: { BLOB_REDIRECT: "public", BLOB_PUBLIC_URL: bucket.url, BLOB_REDIRECT_MIN_BYTES: String(1 * MiB), LOG_READ_SAMPLE_RATE: "1" },
  });
});

afterAll(async () => {
  await registry?.stop();
  await bucket?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const skopeo = (...args: string[]) => mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 150_000 });

describe("blob downloads redirected to a public bucket", () => {
  it("skopeo pulls large layers from the bucket URL and small ones from the Worker, all with their digests", async () => {
    const source = join(work, "src");
    const image = await buildImage(source, { layers: [64 * 1024, 24 * MiB], tag: "v1" });
    await skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", `oci:${source}:v1`, `docker://${registry.host}/redirect/app:v1`);

    const big = image.layers[1]!;
    const redirected = await fetch(`${registry.url}/v2/redirect/app/blobs/${big.digest}`, { redirect: "manual" });
    expect(redirected.status).toBe(307);
    const location = redirected.headers.get("Location")!;
    expect(location.startsWith(`${bucket.url}/`), location).toBe(true);
    // The URL serves ranges, as skopeo's resumed downloads ask for.
    const partial = await fetch(location, { headers: { Range: "bytes=100-199" } });
    expect(partial.status).toBe(206);
    expect((await partial.arrayBuffer()).byteLength).toBe(100);
    const small = await fetch(`${registry.url}/v2/redirect/app/blobs/${image.layers[0]!.digest}`, { redirect: "manual" });
    expect(small.status).toBe(200);
    await small.arrayBuffer();

    const out = join(work, "out");
    await skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/redirect/app:v1`, `oci:${out}:v1`);
    expect((await findTagged(out, "v1"))?.digest).toBe(image.manifest.digest);
    const pulled = await listBlobs(out);
    for (const blob of [image.config, ...image.layers]) {
      expect(pulled.get(blob.digest)?.sha256, blob.digest).toBe(blob.digest);
    }
    // skopeo's GET of the big layer was answered with the redirect (as was this test's own), not with its bytes.
    const answers = registry.output().split(`"method":"GET","path":"/v2/redirect/app/blobs/${big.digest}"`).slice(1);
    expect(answers.length).toBeGreaterThanOrEqual(2);
    expect(answers.every((line) => line.includes(`"status":307`))).toBe(true);
  });
});
