import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { flushPulls } from "../../src/services/pulls";
import { OCI_MANIFEST, ORIGIN, pushImage, pushManifest } from "./helpers";

// Pull statistics: every successful manifest GET counts once for the manifest and, by tag, for the tag; counts are
// kept in memory and added to D1 in batches, so concurrent pulls lose nothing and a pull costs no write of its own.
const openEnv = { ...env, AUTH_MODE: "open" };

async function get(path: string, init?: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), openEnv, ctx);
  const body = await response.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(init?.method === "HEAD" || response.status === 304 ? null : body, { status: response.status, headers: response.headers });
}

async function manifestPulls(repository: string, digest: string) {
  return env.DB.prepare("SELECT pulls, last_pulled_at FROM manifest_pulls WHERE repository = ? AND digest = ?").bind(repository, digest).first<{ pulls: number; last_pulled_at: number }>();
}

interface Pulls {
  pulls: number;
  lastPulledAt: string | null;
}

/** The tag API's page of tags, by name, with their pull statistics (this isolate's unwritten counts included). */
async function tagApi(repository: string): Promise<Map<string, Pulls & { manifestPulls: Pulls }>> {
  const response = await get(`/api/repositories/${repository}/tags`);
  expect(response.status).toBe(200);
  const { tags } = (await response.json()) as { tags: (Pulls & { name: string; manifestPulls: Pulls })[] };
  return new Map(tags.map((tag) => [tag.name, tag]));
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
    const listed = await tagApi("stats/app");
    expect(listed.get("1")).toMatchObject({ pulls: 170, manifestPulls: { pulls: 200 } });
    expect(Date.parse(listed.get("1")!.lastPulledAt!)).toBeGreaterThanOrEqual(started - 1000);

    // Later pulls add to what was written.
    await get("/v2/stats/app/manifests/1", { headers: accept });
    await flushPulls(env.DB);
    expect((await manifestPulls("stats/app", digest))?.pulls).toBe(201);
    expect((await tagApi("stats/app")).get("1")).toMatchObject({ pulls: 171, manifestPulls: { pulls: 201 } });
  });

  it("start again from none for a tag or manifest deleted and pushed again", async () => {
    const accept = { Accept: OCI_MANIFEST };
    const manifest = await pushImage("stats/again", [100]);
    const digest = await pushManifest("stats/again", "1", manifest);
    await pushManifest("stats/again", "2", manifest);
    for (const path of ["/v2/stats/again/manifests/1", "/v2/stats/again/manifests/2"]) expect((await get(path, { headers: accept })).status).toBe(200);
    await flushPulls(env.DB);
    // The tag alone, then the manifest with every tag left on it.
    expect((await get("/v2/stats/again/manifests/1", { method: "DELETE" })).status).toBe(202);
    expect((await tagApi("stats/again")).get("2")).toMatchObject({ pulls: 1, manifestPulls: { pulls: 2 } });
    expect((await get(`/v2/stats/again/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect(await manifestPulls("stats/again", digest)).toBeNull();
    await pushManifest("stats/again", "1", manifest);
    await pushManifest("stats/again", "2", manifest);
    const tags = await tagApi("stats/again");
    for (const name of ["1", "2"]) expect(tags.get(name)).toMatchObject({ pulls: 0, lastPulledAt: null, manifestPulls: { pulls: 0, lastPulledAt: null } });
  });

  it("say never for a tag never pulled", async () => {
    await pushManifest("stats/never", "1", await pushImage("stats/never", [100]));
    expect((await tagApi("stats/never")).get("1")).toMatchObject({ pulls: 0, lastPulledAt: null, manifestPulls: { pulls: 0, lastPulledAt: null } });
  });

  it("show on the repository page, which sorts tags by last pull", async () => {
    const image = await pushImage("stats/sorted", [100]);
    for (const tag of ["a", "b", "c"]) await pushManifest("stats/sorted", tag, image);
    const accept = { Accept: OCI_MANIFEST };
    await get("/v2/stats/sorted/manifests/c", { headers: accept });
    await get("/v2/stats/sorted/manifests/c", { headers: accept });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await get("/v2/stats/sorted/manifests/a", { headers: accept });
    await flushPulls(env.DB);
    const order = async (query: string) => {
      const html = await (await get(`/r/stats/sorted${query}`)).text();
      return { tags: [...html.matchAll(/data-tag="([^"]+)"/g)].map((match) => match[1]), html };
    };
    expect((await order("?sort=pulled")).tags).toEqual(["a", "c", "b"]);
    const { html } = await order("");
    expect(html).toContain("pulled 2 times");
    expect(html).toContain("never pulled");
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
