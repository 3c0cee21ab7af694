import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { flushPulls } from "../../src/services/pulls";
import { PullRecords } from "../../src/storage/pull-records";
import { OCI_MANIFEST, ORIGIN, pushImage, pushManifest } from "./helpers";

// Pull statistics: every successful manifest GET counts once for the manifest and, by tag, for the tag; counts are
// kept in memory and added to D1 in batches, so concurrent pulls lose nothing and a pull costs no write of its own.
const openEnv = { ...env, AUTH_MODE: "open" };

async function get(path: string, init?: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), openEnv, ctx);
  await response.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return response;
}

async function manifestPulls(repository: string, digest: string) {
  return env.DB.prepare("SELECT pulls, last_pulled_at FROM manifest_pulls WHERE repository = ? AND digest = ?").bind(repository, digest).first<{ pulls: number; last_pulled_at: number }>();
}

describe("pull statistics", () => {
  it("count every one of many concurrent pulls, by tag and by digest, and nothing else", async () => {
    // Manifest pulls: GETs (150 by tag, 50 by digest). Tag pulls: GETs and HEADs by tag (150 + 20), as docker resolves.
    const digest = await pushManifest("stats/app", "1", await pushImage("stats/app", [100]));
    const accept = { Accept: OCI_MANIFEST };
    const started = Date.now();
    const answers = await Promise.all([
      ...Array.from({ length: 150 }, () => get("/v2/stats/app/manifests/1", { headers: accept })),
      ...Array.from({ length: 50 }, () => get(`/v2/stats/app/manifests/${digest}`, { headers: accept })),
      // Not manifest pulls: HEADs (but they resolve the tag), conditional GETs answered 304, misses, refusals by Accept.
      ...Array.from({ length: 20 }, () => get("/v2/stats/app/manifests/1", { method: "HEAD", headers: accept })),
      get("/v2/stats/app/manifests/1", { headers: { ...accept, "If-None-Match": `"${digest}"` } }),
      get("/v2/stats/app/manifests/2", { headers: accept }),
      get("/v2/stats/app/manifests/1", { headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" } }),
    ]);
    expect(answers.filter((response) => response.status === 200)).toHaveLength(220);
    await flushPulls(env.DB);

    const manifest = await manifestPulls("stats/app", digest);
    expect(manifest?.pulls).toBe(200);
    expect(manifest!.last_pulled_at).toBeGreaterThanOrEqual(started);
    const tags = await new PullRecords(env.DB).ofTags("stats/app", ["1", "2"]);
    expect(tags.get("1")?.pulls).toBe(170);
    expect(tags.has("2")).toBe(false);

    // Later pulls add to what was written.
    await get("/v2/stats/app/manifests/1", { headers: accept });
    await flushPulls(env.DB);
    expect((await manifestPulls("stats/app", digest))?.pulls).toBe(201);
    expect((await new PullRecords(env.DB).ofTags("stats/app", ["1"])).get("1")?.pulls).toBe(171);
  });

  it("write nothing per pull: a pull's own D1 work is reads", async () => {
    const digest = await pushManifest("stats/quiet", "1", await pushImage("stats/quiet", [100]));
    await flushPulls(env.DB);
    await get(`/v2/stats/quiet/manifests/${digest}`, { headers: { Accept: OCI_MANIFEST } });
    // Not yet written: the flush is due after 30 s, 1,000 pulls or 500 manifests and tags.
    expect(await manifestPulls("stats/quiet", digest)).toBeNull();
    await flushPulls(env.DB);
    expect((await manifestPulls("stats/quiet", digest))?.pulls).toBe(1);
  });
});
