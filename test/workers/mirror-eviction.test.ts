import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { GC } from "../../src/audit/events";
import { GarbageCollector, type GcOptions } from "../../src/gc/collector";
import { collectGarbage } from "../../src/gc/run";
import { flushPulls, mirrorTouches } from "../../src/services/pulls";
import { MirrorContentRecords } from "../../src/storage/mirror-records";
import { callerOf, mirrorEnvWith, publish, upstream, UPSTREAM, useFakeUpstream } from "./fake-upstream";
import { call, pushBlob, pushManifest, sha256 } from "./helpers";

// A mirror with maxBytes keeps at most that much: the collector evicts its least recently pulled images (manifest,
// references, tags) within its bounded pass, and their blobs then go through the ordinary mark and sweep, which never
// deletes a blob another manifest (a pushed image) references. Pulls are counted in memory and flushed in batches.
useFakeUpstream();
// Every pull writes its time here; in production at most once a minute per manifest and isolate.
beforeAll(() => {
  mirrorTouches.everyMs = 0;
});

const LAYER = 20_000;
const MIRRORS = ["lru", "shared", "dry", "raced", "paged", "wired", "claims", "team2", "heads"].map((prefix) => ({ prefix, upstream: UPSTREAM, library: true }));
const pull = callerOf(mirrorEnvWith(MIRRORS));
const contents = new MirrorContentRecords(env.DB);

/** Pulls an image through the mirror the way a client does: the manifest by tag, then its config and layer. */
async function pullImage(repository: string, tag: string): Promise<{ digest: string; layerDigest: string; ok: boolean }> {
  const manifest = await pull(`/v2/${repository}/manifests/${tag}`);
  const body = JSON.parse(await manifest.text()) as { config: { digest: string }; layers: { digest: string }[] };
  let ok = manifest.status === 200;
  for (const blob of [body.config, ...body.layers]) {
    const response = await pull(`/v2/${repository}/blobs/${blob.digest}`);
    ok &&= response.status === 200 && (await sha256(new Uint8Array(await response.arrayBuffer()))) === blob.digest;
  }
  return { digest: manifest.headers.get("Docker-Content-Digest")!, layerDigest: body.layers[0]!.digest, ok };
}

async function gc(prefix: string, maxBytes: number, options: Partial<GcOptions> = {}) {
  await flushPulls(env.DB);
  return new GarbageCollector(env.DB, env.BLOBS).run({ dryRun: false, graceMs: 3_600_000, batch: 100, mirrors: [{ prefix, maxBytes }], ...options });
}

/** Everything older than the grace window, so a collection marks and (next pass) deletes what nothing references. */
async function ageEverything() {
  await env.DB.batch([
    env.DB.prepare("UPDATE blobs SET created_at = 0, deleting_at = CASE WHEN deleting_at IS NULL THEN NULL ELSE 1 END"),
    env.DB.prepare("UPDATE repository_blobs SET created_at = 0"),
  ]);
}

async function manifestRow(repository: string, digest: string) {
  return env.DB.prepare("SELECT digest FROM manifests WHERE repository = ? AND digest = ?").bind(repository, digest).first();
}

async function blobRow(digest: string) {
  return env.DB.prepare("SELECT object_key FROM blobs WHERE digest = ?").bind(digest).first<{ object_key: string }>();
}

describe("mirror eviction (maxBytes)", () => {
  it("counts what a mirror holds, evicts the least recently pulled first, and fetches an evicted image again", async () => {
    for (const name of ["a", "b", "c"]) await publish(`library/${name}`, "1", LAYER);
    const a = await pullImage("lru/a", "1");
    const b = await pullImage("lru/b", "1");
    const c = await pullImage("lru/c", "1");
    expect([a.ok, b.ok, c.ok]).toEqual([true, true, true]);
    const usage = await contents.usage("lru");
    expect(usage.manifests).toBe(3);
    expect(usage.bytes).toBeGreaterThan(3 * LAYER);
    // Pulled again later: b is now the least recently pulled.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await pullImage("lru/a", "1")).ok).toBe(true);

    const perImage = usage.bytes / 3;
    const report = await gc("lru", Math.ceil(2.5 * perImage));
    expect(report.evicted.map((entry) => entry.repository)).toEqual(["lru/b"]);
    expect(await manifestRow("lru/b", b.digest)).toBeNull();
    expect(await manifestRow("lru/a", a.digest)).not.toBeNull();
    expect(await manifestRow("lru/c", c.digest)).not.toBeNull();
    expect((await contents.usage("lru")).bytes).toBeLessThanOrEqual(2.5 * perImage);
    expect((await pull("/v2/lru/b/tags/list")).status).toBe(200);

    // b's blobs are no longer referenced: marked, then deleted a grace window later; a's and c's stay.
    const objectKey = (await blobRow(b.layerDigest))!.object_key;
    await ageEverything();
    await gc("lru", Number.MAX_SAFE_INTEGER);
    await ageEverything();
    const swept = await gc("lru", Number.MAX_SAFE_INTEGER);
    expect(swept.deleted.map((blob) => blob.digest)).toContain(b.layerDigest);
    expect(swept.deleted.map((blob) => blob.digest)).not.toContain(a.layerDigest);
    expect(await env.BLOBS.head(objectKey)).toBeNull();

    // Pulled again, it is a miss that fetches it whole and correct.
    upstream.calls = [];
    const again = await pullImage("lru/b", "1");
    expect(again.ok).toBe(true);
    expect(upstream.count("GET /v2/library/b/manifests/")).toBe(1);
    expect(upstream.count(`GET /v2/library/b/blobs/${b.layerDigest}`)).toBe(1);
  });

  it("never evicts a blob that a pushed image references", async () => {
    const image = await publish("library/shared", "1", LAYER);
    // The same layer and config, pushed to a repository of this registry.
    await pushBlob("team/uses-shared", upstream.blobs.get(image.layerDigest)!);
    await pushBlob("team/uses-shared", upstream.blobs.get(image.configDigest)!);
    await pushManifest("team/uses-shared", "1", JSON.parse(image.body));
    expect((await pullImage("shared/shared", "1")).ok).toBe(true);

    const report = await gc("shared", 1);
    expect(report.evicted.map((entry) => entry.repository)).toEqual(["shared/shared"]);
    for (let pass = 0; pass < 3; pass++) {
      await ageEverything();
      const swept = await gc("shared", 1);
      expect(swept.deleted.map((blob) => blob.digest)).not.toContain(image.layerDigest);
    }
    const pushed = await call(`/v2/team/uses-shared/blobs/${image.layerDigest}`);
    expect(pushed.status).toBe(200);
    expect(await sha256(new Uint8Array(await pushed.arrayBuffer()))).toBe(image.layerDigest);
  });

  it("changes nothing in a dry run", async () => {
    await publish("library/dry", "1", LAYER);
    const image = await pullImage("dry/dry", "1");
    const report = await gc("dry", 1, { dryRun: true });
    expect(report.evicted.map((entry) => entry.digest)).toEqual([image.digest]);
    expect(await manifestRow("dry/dry", image.digest)).not.toBeNull();
    expect((await contents.usage("dry")).manifests).toBe(1);
  });

  it("keeps an image pulled after it was chosen", async () => {
    await publish("library/raced", "1", LAYER);
    const image = await pullImage("raced/raced", "1");
    const [chosen] = await contents.leastRecentlyPulled("raced", 10);
    // The pull lands (an isolate's flush) between the choice and the eviction.
    await contents.touch([{ repository: "raced/raced", digest: image.digest }], chosen!.lastPulledAt + 1);
    expect(await contents.evict("raced", [chosen!], { by: GC, detail: { reason: "eviction", mirror: "raced" } })).toEqual([]);
    expect(await manifestRow("raced/raced", image.digest)).not.toBeNull();
    expect((await contents.usage("raced")).manifests).toBe(1);
  });

  it("evicts within the pass's budget and goes on in the next pass", async () => {
    for (let i = 0; i < 30; i++) await publish(`library/paged${i}`, "1", 100);
    for (let i = 0; i < 30; i++) expect((await pull(`/v2/paged/paged${i}/manifests/1`)).status).toBe(200);
    const first = await gc("paged", 1, { batch: 10, subrequests: 20 });
    expect(first.evicted).toHaveLength(10);
    expect(first.more).toBe(true);
    expect(first.subrequests).toBeLessThanOrEqual(20);
    let passes = 1;
    while ((await contents.usage("paged")).manifests > 0 && passes < 10) {
      await gc("paged", 1, { batch: 10, subrequests: 20 });
      passes += 1;
    }
    expect(passes).toBe(3);
    expect((await contents.usage("paged")).bytes).toBe(0);
  });

  it("runs from the cron pass with the mirrors' settings, and GET /admin/mirrors shows what each holds", async () => {
    await publish("library/wired", "1", LAYER);
    expect((await pullImage("wired/wired", "1")).ok).toBe(true);
    const mirrors = MIRRORS.map((mirror) => (mirror.prefix === "wired" ? { ...mirror, maxBytes: 1000 } : mirror));
    const wiredEnv = mirrorEnvWith(mirrors);
    const before = (await (await callerOf(wiredEnv)("/admin/mirrors", { headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` } })).json()) as {
      mirrors: { prefix: string; storedBytes: number; storedManifests: number; maxBytes: number | null }[];
    };
    expect(before.mirrors.find((entry) => entry.prefix === "wired")).toMatchObject({ storedManifests: 1, maxBytes: 1000 });
    expect(before.mirrors.find((entry) => entry.prefix === "wired")!.storedBytes).toBeGreaterThan(LAYER);

    const report = await collectGarbage(wiredEnv);
    expect(report.evicted.map((entry) => entry.repository)).toEqual(["wired/wired"]);
    expect((await contents.usage("wired")).bytes).toBe(0);
  });

  it("counts the bytes it stores, not what an upstream manifest claims", async () => {
    // An upstream manifest may declare any size for layers nobody fetches: only stored blobs count.
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"1".repeat(64)}`, size: 2 ** 50 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${"2".repeat(64)}`, size: 2 ** 50 }],
    });
    const digest = await sha256(body);
    upstream.manifests.set(digest, { body, mediaType: "application/vnd.oci.image.manifest.v1+json" });
    upstream.tags.set("library/claims:1", digest);
    expect((await pull("/v2/claims/claims/manifests/1")).status).toBe(200);
    expect((await contents.usage("claims")).bytes).toBe(new TextEncoder().encode(body).byteLength);

    // A real image's layer counts once it is stored (its size as R2 checked it).
    await publish("library/claims-real", "1", LAYER);
    const image = await pullImage("claims/claims-real", "1");
    expect(image.ok).toBe(true);
    const [row] = (await contents.leastRecentlyPulled("claims", 10)).filter((entry) => entry.repository === "claims/claims-real");
    expect(row!.bytes).toBeGreaterThan(LAYER);
    expect(row!.bytes).toBeLessThan(LAYER + 2000);
  });

  it("never counts, nor evicts, a pushed manifest that a mirror later covers", async () => {
    // Pushed before "team2" became a mirror's prefix (pushes there are refused now).
    const image = await publish("team2-src", "1", 1000);
    await pushBlob("team2/foo", upstream.blobs.get(image.layerDigest)!);
    await pushBlob("team2/foo", upstream.blobs.get(image.configDigest)!);
    const pushed = await pushManifest("team2/foo", "v1", JSON.parse(image.body));
    // The upstream has the same manifest under another tag: the mirror finds it stored.
    upstream.tags.set("foo:latest", image.digest);
    const mirrors = [{ prefix: "team2", upstream: UPSTREAM, library: false }];
    const team2 = callerOf(mirrorEnvWith(mirrors));
    expect((await team2("/v2/team2/foo/manifests/latest")).status).toBe(200);
    expect((await contents.usage("team2")).manifests).toBe(0);
    await gc("team2", 1);
    expect(await manifestRow("team2/foo", pushed)).not.toBeNull();
    expect(await env.DB.prepare("SELECT 1 FROM tags WHERE repository = 'team2/foo' AND name = 'v1'").first()).not.toBeNull();
  });

  it("keeps what clients only check with a HEAD (containerd, docker with the layers present)", async () => {
    await publish("library/hot", "1", 100);
    await publish("library/cold", "1", 100);
    expect((await pull("/v2/heads/hot/manifests/1")).status).toBe(200);
    expect((await pull("/v2/heads/cold/manifests/1")).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 3; i++) expect((await pull("/v2/heads/hot/manifests/1", { method: "HEAD", headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } })).status).toBe(200);
    const usage = await contents.usage("heads");
    const report = await gc("heads", usage.bytes - 1);
    expect(report.evicted.map((entry) => entry.repository)).toEqual(["heads/cold"]);
  });
});
