import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { GarbageCollector } from "../../src/gc/collector";

// A garbage collection pass (retention included) makes at most GC_SUBREQUEST_BUDGET calls to D1 and R2, however big
// the registry, and a big registry is fully collected after enough passes. The calls are counted on the bindings
// themselves, not taken from the collector's own report.
const REPOSITORIES = 2_000;
const TAGS_EACH = 3;
const BUDGET = 40;

function countingBindings() {
  const calls = { count: 0 };
  const statement = (prepared: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(prepared, {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (property === "bind") return (...values: unknown[]) => statement(target.bind(...values));
        if (["all", "run", "first", "raw"].includes(String(property))) {
          return (...args: unknown[]) => {
            calls.count += 1;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const unwrap = new WeakMap<object, D1PreparedStatement>();
  const db = new Proxy(env.DB, {
    get(target, property) {
      if (property === "prepare") {
        return (sql: string) => {
          const raw = target.prepare(sql);
          const wrapped = statement(raw);
          unwrap.set(wrapped, raw);
          return wrapped;
        };
      }
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) => {
          calls.count += 1;
          return target.batch(statements);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const bucket = new Proxy(env.BLOBS, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.count += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { db, bucket, calls };
}

async function seed() {
  const numbers = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${REPOSITORIES})`;
  const tags = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${REPOSITORIES}), t(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM t WHERE j < ${TAGS_EACH})`;
  const digest = `sha256:${"2".repeat(64)}`;
  await env.DB.batch([
    env.DB.prepare(`${numbers} INSERT INTO repositories (name, created_at) SELECT 'bulk/repo-' || i, 0 FROM n`),
    env.DB.prepare(`${numbers} INSERT INTO manifests (repository, digest, media_type, size, body, created_at) SELECT 'bulk/repo-' || i, ?1, 'application/vnd.oci.image.manifest.v1+json', 2, '{}', 0 FROM n`).bind(digest),
    env.DB.prepare(`${tags} INSERT INTO tags (repository, name, digest, updated_at) SELECT 'bulk/repo-' || i, 'tag-' || j, ?1, j FROM n, t`).bind(digest),
  ]);
}

describe("garbage collection at scale", () => {
  it(`stays within GC_SUBREQUEST_BUDGET on every pass and collects ${REPOSITORIES} repositories' expired tags after enough passes`, async () => {
    await seed();
    const rules = [{ repositories: "bulk/*", keepLastTags: 1, deleteReferrers: false }];
    const perPass: number[] = [];
    let deletedTags = 0;
    for (let pass = 0; pass < 500; pass++) {
      const { db, bucket, calls } = countingBindings();
      const report = await new GarbageCollector(db, bucket).run({
        dryRun: false,
        graceMs: 3_600_000,
        batch: 500,
        subrequests: BUDGET,
        retention: { rules, immutable: [] },
      });
      perPass.push(calls.count);
      expect(calls.count).toBeLessThanOrEqual(BUDGET);
      // The collector reserves each call before it makes it (some turn out unneeded): the count it reports is a bound.
      expect(calls.count).toBeLessThanOrEqual(report.subrequests);
      deletedTags += report.retention.tags.length;
      if (!report.more) break;
    }
    console.info(`${REPOSITORIES} repositories x ${TAGS_EACH} tags: ${perPass.length} passes, subrequests per pass max ${Math.max(...perPass)}`);
    expect(deletedTags).toBe(REPOSITORIES * (TAGS_EACH - 1));
    const left = await env.DB.prepare("SELECT COUNT(*) AS n, COUNT(DISTINCT repository) AS r FROM tags WHERE repository GLOB 'bulk/*'").first<{ n: number; r: number }>();
    expect(left).toEqual({ n: REPOSITORIES, r: REPOSITORIES });
    // Each survivor is its repository's newest tag.
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM tags WHERE repository GLOB 'bulk/*' AND name <> 'tag-3'").first<{ n: number }>())!.n).toBe(0);
  }, 300_000);

  it(`deletes ${REPOSITORIES} repositories' untagged manifests a walk of GC_BATCH_SIZE at a time, each pass going on where the last stopped`, async () => {
    const numbers = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${REPOSITORIES})`;
    await env.DB.batch([
      env.DB.prepare(`${numbers} INSERT INTO repositories (name, created_at) SELECT 'sweep/repo-' || i, 0 FROM n`),
      // Untagged, pushed long ago; every third one tagged, to be kept.
      env.DB.prepare(`${numbers} INSERT INTO manifests (repository, digest, media_type, size, body, created_at) SELECT 'sweep/repo-' || i, ?1, 'application/vnd.oci.image.manifest.v1+json', 2, '{}', 0 FROM n`).bind(`sha256:${"3".repeat(64)}`),
      env.DB.prepare(`${numbers} INSERT INTO tags (repository, name, digest, updated_at) SELECT 'sweep/repo-' || i, 'kept', ?1, 0 FROM n WHERE i % 3 = 0`).bind(`sha256:${"3".repeat(64)}`),
    ]);
    const rules = [{ repositories: "sweep/*", untaggedDays: 1, deleteReferrers: false }];
    let deleted = 0;
    let passes = 0;
    for (let more = true; more; passes++) {
      const { db, bucket, calls } = countingBindings();
      const report = await new GarbageCollector(db, bucket).run({ dryRun: false, graceMs: 3_600_000, batch: 300, subrequests: BUDGET, retention: { rules, immutable: [] } });
      expect(calls.count).toBeLessThanOrEqual(BUDGET);
      deleted += report.retention.manifests.length;
      more = report.more;
      expect(passes).toBeLessThan(50);
    }
    expect(deleted).toBe(REPOSITORIES - Math.floor(REPOSITORIES / 3));
    const left = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifests WHERE repository GLOB 'sweep/*'").first<{ n: number }>();
    expect(left!.n).toBe(Math.floor(REPOSITORIES / 3));
    // At most 300 manifests walked per pass: no pass read them all.
    expect(passes).toBeGreaterThanOrEqual(Math.ceil(REPOSITORIES / 300));
  }, 300_000);

  it("walks as many pages of the mark walk as the budget affords, leaving room for the orphan sweeps, and goes on where it stopped", async () => {
    const BLOBS = 3_000;
    const numbers = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${BLOBS})`;
    // Unreferenced and old: each one is garbage, so each page marks all of its blobs.
    await env.DB.prepare(`${numbers} INSERT INTO blobs (digest, size, object_key, created_at) SELECT 'sha256:' || printf('%064x', i + 7000000), 1, 'blobs/walk/' || i, 0 FROM n`).run();
    const markedNow = async () =>
      (await env.DB.prepare("SELECT COUNT(*) AS n FROM blobs WHERE object_key GLOB 'blobs/walk/*' AND deleting_at IS NOT NULL").first<{ n: number }>())!.n;
    const pass = async (budget: number) => {
      const { db, bucket, calls } = countingBindings();
      const report = await new GarbageCollector(db, bucket).run({ dryRun: false, graceMs: 3_600_000, batch: 500, subrequests: budget });
      expect(calls.count).toBeLessThanOrEqual(budget);
      // The orphan sweeps (3 prefixes) still ran after the walk.
      expect(calls.count).toBeGreaterThan(report.subrequests - 40);
      return report;
    };
    // Budget 50: the first page (4 calls, after 2 for unmark and deletable), then 3 a page while 35 stay for what
    // follows (44 left, then 41, 38, 35): 4 pages of 500.
    const small = await pass(50);
    expect(small.more).toBe(true);
    const first = await markedNow();
    expect(first).toBe(4 * 500);
    // The next pass goes on from the cursor; a large budget finishes the walk in that one pass.
    const large = await pass(500);
    expect(await markedNow()).toBe(BLOBS);
    expect(large.marked.length).toBeGreaterThanOrEqual(BLOBS - first);
  }, 120_000);
});
