import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { GarbageCollector } from "../../src/gc/collector";
import worker from "../../src/index";
import { flushPulls } from "../../src/services/pulls";
import { OCI_MANIFEST, ORIGIN, pushImage, pushManifest } from "./helpers";

// The notPulledDays retention rule deletes exactly the images pushed and not pulled (by tag, or by digest) within
// N days, keeping keepTags; a dry run lists the same and changes nothing.
const DAY = 86_400_000;
const openEnv = { ...env, AUTH_MODE: "open" };

async function pull(path: string) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, { headers: { Accept: OCI_MANIFEST } }), openEnv, ctx);
  await response.arrayBuffer();
  await waitOnExecutionContext(ctx);
  expect(response.status).toBe(200);
}

/** Pushes an image as `repository:tag`, made to look pushed `days` ago. */
async function pushedDaysAgo(repository: string, tag: string, days: number): Promise<string> {
  const digest = await pushManifest(repository, tag, await pushImage(repository, [100]));
  const at = Date.now() - days * DAY;
  await env.DB.batch([
    env.DB.prepare("UPDATE tags SET updated_at = ? WHERE repository = ? AND name = ?").bind(at, repository, tag),
    env.DB.prepare("UPDATE manifests SET created_at = ? WHERE repository = ? AND digest = ?").bind(at, repository, digest),
  ]);
  return digest;
}

async function ageLastPull(repository: string, days: number) {
  const at = Date.now() - days * DAY;
  await env.DB.batch([
    env.DB.prepare("UPDATE tag_pulls SET last_pulled_at = ? WHERE repository = ?").bind(at, repository),
    env.DB.prepare("UPDATE manifest_pulls SET last_pulled_at = ? WHERE repository = ?").bind(at, repository),
  ]);
}

const exists = async (repository: string, digest: string) =>
  (await env.DB.prepare("SELECT 1 FROM manifests WHERE repository = ? AND digest = ?").bind(repository, digest).first()) !== null;

describe("retention: notPulledDays", () => {
  it("deletes exactly the images not pulled within N days, and a dry run says so first", async () => {
    const recent = await pushedDaysAgo("unpulled/recent", "1", 90); // pulled by tag today
    const byDigest = await pushedDaysAgo("unpulled/by-digest", "1", 90); // pulled by digest today
    const old = await pushedDaysAgo("unpulled/old", "1", 90); // pulled 40 days ago
    const never = await pushedDaysAgo("unpulled/never", "1", 90); // never pulled
    const kept = await pushedDaysAgo("unpulled/kept", "release-1", 90); // never pulled, but keepTags
    const young = await pushedDaysAgo("unpulled/young", "1", 5); // never pulled, pushed 5 days ago
    await pull("/v2/unpulled/old/manifests/1");
    await flushPulls(env.DB);
    await ageLastPull("unpulled/old", 40);
    await pull("/v2/unpulled/recent/manifests/1");
    await pull(`/v2/unpulled/by-digest/manifests/${byDigest}`);
    await flushPulls(env.DB);

    const run = (dryRun: boolean) =>
      new GarbageCollector(env.DB, env.BLOBS).run({
        dryRun,
        graceMs: 3_600_000,
        batch: 100,
        retention: { rules: [{ repositories: "unpulled/*", notPulledDays: 30, keepTags: "^release-", deleteReferrers: false }], immutable: [] },
      });
    const preview = await run(true);
    const expected = ["unpulled/never:1", "unpulled/old:1"];
    expect(preview.retention.tags.map((tag) => `${tag.repository}:${tag.tag}`).sort()).toEqual(expected);
    expect(preview.retention.manifests.map((manifest) => manifest.digest).sort()).toEqual([never, old].sort());
    expect(await exists("unpulled/old", old)).toBe(true);

    const report = await run(false);
    expect(report.retention.tags.map((tag) => `${tag.repository}:${tag.tag}`).sort()).toEqual(expected);
    expect(report.retention.manifests.map((manifest) => manifest.digest).sort()).toEqual([never, old].sort());
    expect(await exists("unpulled/old", old)).toBe(false);
    expect(await exists("unpulled/never", never)).toBe(false);
    for (const [repository, digest] of [["unpulled/recent", recent], ["unpulled/by-digest", byDigest], ["unpulled/kept", kept], ["unpulled/young", young]] as const) {
      expect(await exists(repository, digest), repository).toBe(true);
    }
    // Nothing left to do: a second pass deletes nothing more.
    const again = await run(false);
    expect(again.retention.tags).toEqual([]);
  });
});
