import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { configOf, type Env } from "../../src/config";
import { ageTag, callerOf, mirrorEnvWith, PRIVATE, publish, upstream, UPSTREAM, useFakeUpstream } from "./fake-upstream";
import { OCI_INDEX, OCI_MANIFEST, sha256 } from "./helpers";

// Pre-warming: a mirror's configured tags are refreshed by each cron pass (or POST /admin/mirrors/prewarm), a bounded
// number per pass, oldest attempt first, so that a client's first pull is a hit. Progress is at GET /admin/mirrors/prewarm.
useFakeUpstream();

const ADMIN = { Authorization: `Bearer ${env.ADMIN_TOKEN}` };

interface State {
  repository: string;
  tag: string;
  status: "warm" | "failed";
  digest: string | null;
  fetchedBytes: number;
  detail: string | null;
  attemptedAt: number;
  warmedAt: number | null;
}

function mirrorWith(prefix: string, prewarm: unknown) {
  const caller = callerOf(mirrorEnvWith([{ prefix, upstream: UPSTREAM, library: true, prewarm }]));
  return {
    pull: caller,
    /** One pre-warming pass; what it refreshed. */
    async pass(): Promise<State[]> {
      const response = await caller("/admin/mirrors/prewarm", { method: "POST", headers: ADMIN });
      expect(response.status).toBe(200);
      const { mirrors } = (await response.json()) as { mirrors: { prefix: string; refreshed: State[] }[] };
      return mirrors.find((mirror) => mirror.prefix === prefix)!.refreshed;
    },
    async status(): Promise<State[]> {
      const response = await caller("/admin/mirrors/prewarm", { headers: ADMIN });
      expect(response.status).toBe(200);
      const { mirrors } = (await response.json()) as { mirrors: { prefix: string; tags: State[] }[] };
      return mirrors.find((mirror) => mirror.prefix === prefix)!.tags;
    },
  };
}

/** Publishes a two-platform index upstream under the tag: linux/amd64 and linux/arm64/v8 images. */
async function publishIndex(name: string, tag: string) {
  const amd64 = await publish(name, `${tag}-amd64`, 3000);
  const arm64 = await publish(name, `${tag}-arm64`, 5000);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, digest: amd64.digest, size: amd64.body.length, platform: { os: "linux", architecture: "amd64" } },
      { mediaType: OCI_MANIFEST, digest: arm64.digest, size: arm64.body.length, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ],
  });
  const digest = await sha256(body);
  upstream.manifests.set(digest, { body, mediaType: OCI_INDEX });
  upstream.tags.set(`${name}:${tag}`, digest);
  return { digest, amd64, arm64 };
}

describe("pre-warming a mirror", () => {
  it("fetches the listed tags and their blobs, so a client's first pull is served without asking the upstream", async () => {
    const one = await publish("library/warm", "1", 10_000);
    const two = await publish("library/warm", "2", 20_000);
    const mirror = mirrorWith("w1", { images: [{ repository: "warm", tags: ["1", "2"] }] });
    const refreshed = await mirror.pass();
    expect(refreshed.map((state) => [state.tag, state.status, state.digest])).toEqual([
      ["1", "warm", one.digest],
      ["2", "warm", two.digest],
    ]);
    expect(refreshed[1]!.fetchedBytes).toBeGreaterThanOrEqual(20_000);

    upstream.calls = [];
    const manifest = await mirror.pull("/v2/w1/warm/manifests/2");
    expect(manifest.headers.get("X-Mirror-Status")).toBe("hit");
    const layer = await mirror.pull(`/v2/w1/warm/blobs/${two.layerDigest}`);
    expect(layer.headers.get("X-Mirror-Status")).toBe("hit");
    expect(await sha256(new Uint8Array(await layer.arrayBuffer()))).toBe(two.layerDigest);
    expect(upstream.calls).toEqual([]);

    // Within the tags' TTL, a second pass asks the upstream nothing and fetches nothing.
    const again = await mirror.pass();
    expect(again.map((state) => [state.status, state.fetchedBytes])).toEqual([["warm", 0], ["warm", 0]]);
    expect(upstream.calls).toEqual([]);
  });

  it("follows a tag that moved upstream once its TTL has passed", async () => {
    await publish("library/moving", "1");
    const mirror = mirrorWith("w2", { images: [{ repository: "moving", tags: ["1"] }] });
    await mirror.pass();
    const moved = await publish("library/moving", "1", 7000);
    await ageTag("w2/moving", "1");
    const [state] = await mirror.pass();
    expect(state).toMatchObject({ status: "warm", digest: moved.digest });
    expect(state!.fetchedBytes).toBeGreaterThanOrEqual(7000);
    expect((await mirror.pull(`/v2/w2/moving/blobs/${moved.layerDigest}`)).headers.get("X-Mirror-Status")).toBe("hit");
  });

  it("fetches only the configured platforms of a multi-platform image", async () => {
    const index = await publishIndex("library/multi", "1");
    const mirror = mirrorWith("w3", { images: [{ repository: "multi", tags: ["1"] }], platforms: ["linux/arm64"] });
    const [state] = await mirror.pass();
    expect(state).toMatchObject({ status: "warm", digest: index.digest });
    expect(upstream.count(`GET /v2/library/multi/blobs/${index.arm64.layerDigest}`)).toBe(1);
    expect(upstream.count(`GET /v2/library/multi/blobs/${index.amd64.layerDigest}`)).toBe(0);
    expect(upstream.count(`GET /v2/library/multi/manifests/${index.amd64.digest}`)).toBe(0);
    upstream.calls = [];
    expect((await mirror.pull(`/v2/w3/multi/manifests/${index.arm64.digest}`)).headers.get("X-Mirror-Status")).toBe("hit");
    expect((await mirror.pull(`/v2/w3/multi/blobs/${index.arm64.layerDigest}`)).headers.get("X-Mirror-Status")).toBe("hit");
    expect(upstream.calls).toEqual([]);
  });

  it("keeps the newest matching tags of a pattern, comparing numbers as numbers", async () => {
    for (const tag of ["1.2", "1.9", "1.10", "2.0", "latest"]) await publish("library/versions", tag, 100);
    const mirror = mirrorWith("w4", { images: [{ repository: "versions", tagPattern: "^1\\.", maxTags: 2 }] });
    const refreshed = await mirror.pass();
    expect(refreshed.map((state) => state.tag).sort()).toEqual(["1.10", "1.9"]);
  });

  it("refreshes at most tagsPerRun tags per pass, those attempted longest ago first", async () => {
    for (const tag of ["a", "b", "c"]) await publish("library/paced", tag, 100);
    const mirror = mirrorWith("w5", { images: [{ repository: "paced", tags: ["a", "b", "c"] }], tagsPerRun: 2 });
    expect((await mirror.pass()).map((state) => state.tag)).toEqual(["a", "b"]);
    expect((await mirror.pass()).map((state) => state.tag)).toEqual(["c", "a"]);
    expect((await mirror.pass()).map((state) => state.tag)).toEqual(["b", "c"]);
    expect((await mirror.status()).map((state) => state.tag)).toEqual(["a", "b", "c"]);
  });

  it("records a failure with its reason, keeps the last success, stores nothing bad, and recovers", async () => {
    const image = await publish("library/flaky", "1", 4000);
    const mirror = mirrorWith("w6", { images: [{ repository: "flaky", tags: ["1"] }] });
    await mirror.pass();
    const [warm] = await mirror.status();

    const moved = await publish("library/flaky", "1", 6000);
    await ageTag("w6/flaky", "1");
    upstream.fault = { kind: "corrupt", methods: ["GET"] };
    const [failed] = await mirror.pass();
    expect(failed).toMatchObject({ status: "failed" });
    expect(failed!.detail).toMatch(/./);
    const [shown] = await mirror.status();
    expect(shown).toMatchObject({ status: "failed", warmedAt: warm!.warmedAt });
    // The corrupt layer was not stored: a client pulling it now gets it from the upstream, whole and right.
    upstream.fault = null;
    const layer = await mirror.pull(`/v2/w6/flaky/blobs/${moved.layerDigest}`);
    expect(await sha256(new Uint8Array(await layer.arrayBuffer()))).toBe(moved.layerDigest);

    await ageTag("w6/flaky", "1");
    const [recovered] = await mirror.pass();
    expect(recovered).toMatchObject({ status: "warm", digest: moved.digest });
    expect(image.digest).not.toBe(moved.digest);
  });

  it("says failed, not warm, when the upstream is down and only the stored copy answered", async () => {
    await publish("library/down", "1");
    const mirror = mirrorWith("w7", { images: [{ repository: "down", tags: ["1"] }] });
    expect((await mirror.pass())[0]).toMatchObject({ status: "warm" });
    await ageTag("w7/down", "1");
    upstream.fault = { kind: "down" };
    const [state] = await mirror.pass();
    expect(state).toMatchObject({ status: "failed" });
    expect(state!.detail).toContain("could not be asked");
  });

  it("says failed when an index has no image for the configured platforms", async () => {
    await publishIndex("library/noplat", "1");
    const mirror = mirrorWith("w8", { images: [{ repository: "noplat", tags: ["1"] }], platforms: ["windows/amd64"] });
    const [state] = await mirror.pass();
    expect(state).toMatchObject({ status: "failed" });
    expect(state!.detail).toContain("windows/amd64");
  });

  it("forgets tags no longer configured", async () => {
    for (const tag of ["n-1", "n-2"]) await publish("library/rolling", tag, 100);
    const mirror = mirrorWith("w9", { images: [{ repository: "rolling", tagPattern: "^n-", maxTags: 1 }] });
    await mirror.pass();
    await publish("library/rolling", "n-3", 100);
    await mirror.pass();
    expect((await mirror.status()).map((state) => state.tag)).toEqual(["n-3"]);
  });

  it("refuses a prewarm setting that cannot work, at startup, naming it", () => {
    const bad = (prewarm: unknown) => () => configOf({ ...env, MIRRORS: JSON.stringify([{ prefix: "x", upstream: UPSTREAM, prewarm }]) } as Env);
    expect(bad({ images: [{ repository: "alpine" }] })).toThrow(/MIRRORS\.0\.prewarm\.images\.0.*tags, a tagPattern or both/);
    expect(bad({ images: [{ repository: "alpine", tagPattern: "(" }] })).toThrow(/tagPattern.*not a regular expression/);
    expect(bad({ images: [{ repository: "Alpine", tags: ["1"] }] })).toThrow(/repository/);
    expect(bad({ images: [{ repository: "alpine", tags: ["1"] }], platforms: ["amd64"] })).toThrow(/platforms/);
    expect(bad({ images: [{ repository: "alpine", tags: ["1"] }], tagsPerRun: 5, tags_per_run: 5 })).toThrow(/tags_per_run/);
    const settings = (mirrors: unknown[]) => () => configOf({ ...env, MIRRORS: JSON.stringify(mirrors) } as Env);
    expect(settings([{ prefix: "x", upstream: UPSTREAM, max_bytes: 100 }])).toThrow(/max_bytes/);
    // The "" mirror may not warm what another mirror's prefix serves.
    expect(settings([{ prefix: "", upstream: UPSTREAM, prewarm: { images: [{ repository: "other/foo", tags: ["1"] }] } }, { prefix: "other", upstream: PRIVATE }])).toThrow(
      /other\/foo is served by the mirror "other"/,
    );
  });
});
