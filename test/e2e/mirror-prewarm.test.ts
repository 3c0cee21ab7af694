// Pre-warming and eviction against a real upstream (CNCF Distribution) and a real client (skopeo), under wrangler dev:
// a pre-warmed image pulls whole with the upstream stopped; a mirror over its maxBytes evicts the least recently
// pulled image, which then needs the upstream again, and keeps the other.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { startDistribution, type Distribution } from "../support/distribution";
import { buildImage, listBlobs } from "../support/oci-layout";
import { startRegistry, type Registry } from "./harness";

const ADMIN_TOKEN = "e2e-admin-token-of-at-least-32-characters";
const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };
const LAYER = 1024 * 1024;

let upstream: Distribution;
let registry: Registry;
let work: string;

const skopeo = (...args: string[]) => ["--insecure-policy", "--tmpdir", work, ...args];

async function adminCall(method: string, path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${registry.url}${path}`, { method, headers: admin });
  expect(response.status, path).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-prewarm-"));
  upstream = await startDistribution();
  registry = await startRegistry({
    vars: {
      ADMIN_TOKEN,
      // Room for one of the two images (each a little over 2 MiB), and the first one kept warm.
      MIRRORS: JSON.stringify([
        { prefix: "warm", upstream: upstream.url, library: true, maxBytes: 3 * LAYER, timeoutSeconds: 5, prewarm: { images: [{ repository: "kept", tags: ["1"] }] } },
      ]),
    },
  });
  for (const name of ["kept", "cold"]) {
    await buildImage(join(work, name), { layers: [2 * LAYER], tag: "1", seed: name });
    await mustRun("skopeo", skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", `oci:${join(work, name)}:1`, `docker://${upstream.host}/library/${name}:1`), { timeoutMs: 120_000 });
  }
});

afterAll(async () => {
  await registry?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("mirror pre-warming and eviction", () => {
  it("serves a pre-warmed image with the upstream stopped, and evicts the least recently pulled past maxBytes", async () => {
    // A client pulls "cold" through the mirror first; then the pre-warming pass fetches "kept".
    const cold = await runCommand("skopeo", skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/warm/cold:1`, `oci:${join(work, "cold-pull")}:1`), { timeoutMs: 120_000 });
    expect(cold.code, cold.stderr).toBe(0);
    const pass = (await adminCall("POST", "/admin/mirrors/prewarm")) as { mirrors: { refreshed: { tag: string; status: string; fetchedBytes: number }[] }[] };
    expect(pass.mirrors[0]!.refreshed).toMatchObject([{ tag: "1", status: "warm" }]);
    expect(pass.mirrors[0]!.refreshed[0]!.fetchedBytes).toBeGreaterThanOrEqual(2 * LAYER);
    const status = (await adminCall("GET", "/admin/mirrors/prewarm")) as { mirrors: { tags: { repository: string; status: string; warmedAt: number }[] }[] };
    expect(status.mirrors[0]!.tags).toMatchObject([{ repository: "warm/kept", status: "warm" }]);

    // Both held: over maxBytes. The collector evicts "cold", pulled before "kept" was warmed.
    const before = (await adminCall("GET", "/admin/mirrors")) as { mirrors: { storedBytes: number; maxBytes: number }[] };
    expect(before.mirrors[0]!.storedBytes).toBeGreaterThan(before.mirrors[0]!.maxBytes);
    const gc = (await adminCall("POST", "/admin/gc")) as { evicted: { repository: string }[] };
    expect(gc.evicted.map((entry) => entry.repository)).toEqual(["warm/cold"]);
    const after = (await adminCall("GET", "/admin/mirrors")) as { mirrors: { storedBytes: number; maxBytes: number }[] };
    expect(after.mirrors[0]!.storedBytes).toBeLessThanOrEqual(after.mirrors[0]!.maxBytes);

    await upstream.stop();
    // The pre-warmed image pulls whole and byte for byte without the upstream.
    const kept = await runCommand("skopeo", skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/warm/kept:1`, `oci:${join(work, "kept-pull")}:1`), { timeoutMs: 120_000 });
    expect(kept.code, kept.stderr).toBe(0);
    const source = await listBlobs(join(work, "kept"));
    for (const [digest, blob] of await listBlobs(join(work, "kept-pull"))) {
      expect(blob.sha256).toBe(digest);
      if (source.has(digest)) expect(blob).toEqual(source.get(digest));
    }
    // The evicted one needs the upstream, which is gone: a clear 502, not a partial image.
    const evicted = await fetch(`${registry.url}/v2/warm/cold/manifests/1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(evicted.status).toBe(502);
    expect(((await evicted.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UPSTREAM_UNAVAILABLE");
  });
});
