import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Budget } from "../../src/gc/budget";
import { applyRetention, RetentionRules } from "../../src/gc/retention";
import worker from "../../src/index";
import { ORIGIN, pushBlob, pushImage, pushManifest, randomBytes, sha256 } from "./helpers";
import { basic, createToken } from "./token-auth";

// Cost is part of correctness: a hot path reads and writes the same number of D1 rows whatever the registry's size.
// D1's own meta (rows_read, rows_written) of every statement a request runs is added up, with 1,000 other
// repositories (a manifest and a tag each, named to sort both before and after the ones measured) and with 10,000.
// Searches, catalogs a token narrows to some repositories, and retention passes too: they read their matches and
// their page (or pass), not the registry.
const SIZES = [1_000, 10_000];

interface Counts {
  queries: number;
  rowsRead: number;
  rowsWritten: number;
}

/** A D1 binding whose statements add their meta to `counts` (first() is run as all() to see its meta). */
function counted(db: D1Database, counts: Counts): D1Database {
  const add = (meta: D1Meta | undefined) => {
    counts.queries += 1;
    counts.rowsRead += meta?.rows_read ?? 0;
    counts.rowsWritten += meta?.rows_written ?? 0;
  };
  const statement = (prepared: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(prepared, {
      get(target, property) {
        if (property === "bind") return (...values: unknown[]) => statement(target.bind(...values));
        if (property === "all") return async () => {
          const result = await target.all();
          add(result.meta);
          return result;
        };
        if (property === "run") return async () => {
          const result = await target.run();
          add(result.meta);
          return result;
        };
        if (property === "first") return async (column?: string) => {
          const result = await target.all<Record<string, unknown>>();
          add(result.meta);
          const row = result.results[0] ?? null;
          return column === undefined || row === null ? row : (row[column] ?? null);
        };
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const database = <T extends { prepare: D1Database["prepare"]; batch: D1Database["batch"] }>(inner: T): T =>
    new Proxy(inner, {
      get(target, property) {
        if (property === "prepare") return (sql: string) => statement(target.prepare(sql));
        if (property === "batch") return async (statements: D1PreparedStatement[]) => {
          // The batch gets the binding's own statements back (a Proxy would not do for it).
          const unwrapped = statements.map((s) => (s as unknown as { [RAW]?: D1PreparedStatement })[RAW] ?? s);
          const results = await target.batch(unwrapped);
          for (const result of results) add(result.meta);
          return results;
        };
        if (property === "withSession") return (constraint?: string) => database((target as unknown as D1Database).withSession(constraint));
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return database(db);
}
const RAW = Symbol("raw statement");

async function measure(path: string, init: RequestInit = {}, settings: object = {}): Promise<Counts & { status: number }> {
  const counts: Counts = { queries: 0, rowsRead: 0, rowsWritten: 0 };
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), { ...env, ...settings, DB: counted(env.DB, counts) }, ctx);
  await response.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return { ...counts, status: response.status };
}

/** Grows the registry straight in D1 to `total` other repositories, each with one manifest tagged latest. */
async function seed(from: number, total: number) {
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"1".repeat(64)}`, size: 2 }, layers: [] });
  const digest = await sha256(manifest);
  const numbers = `WITH RECURSIVE n(i) AS (SELECT ${from + 1} UNION ALL SELECT i + 1 FROM n WHERE i < ${total})`;
  // Half sort before "cost/", half after it.
  const name = "CASE i % 2 WHEN 0 THEN 'aaa-seeded/repo-' ELSE 'seeded/repo-' END || i";
  await env.DB.batch([
    env.DB.prepare(`${numbers} INSERT INTO repositories (name, created_at) SELECT ${name}, 0 FROM n`),
    env.DB.prepare(
      `${numbers} INSERT INTO manifests (repository, digest, media_type, size, body, created_at) SELECT ${name}, ?1, 'application/vnd.oci.image.manifest.v1+json', length(?2), ?2, 0 FROM n`,
    ).bind(digest, manifest),
    env.DB.prepare(`${numbers} INSERT INTO tags (repository, name, digest, updated_at) SELECT ${name}, 'latest', ?1, 0 FROM n`).bind(digest),
    env.DB.prepare(`${numbers} INSERT INTO repository_search (repository, tag, digest, pushed_at, description, search_text) SELECT ${name}, 'latest', ?1, 0, 'Seeded', 'seeded,an image among many' FROM n`).bind(digest),
    // Their search entries, as a push makes them.
    env.DB.prepare(`${numbers} INSERT INTO search_terms (term, repository, source) SELECT t.term, t.repository, 0 FROM n JOIN search_name_terms t ON t.repository = ${name}`),
    env.DB.prepare(`${numbers} INSERT INTO search_terms (term, repository, source) SELECT t.term, t.repository, 1 FROM n JOIN search_annotation_terms t ON t.repository = ${name}`),
  ]);
}

/** A retention pass (a dry run: each starts where the first would) with the counted binding. */
async function measureRetention(): Promise<Counts & { status: number }> {
  const counts: Counts = { queries: 0, rowsRead: 0, rowsWritten: 0 };
  await applyRetention(counted(env.DB, counts), RETENTION, [], { dryRun: true, limit: 50, now: Date.now(), budget: new Budget(30) });
  return { ...counts, status: 200 };
}

// Rules over a few repositories of their own, and over the whole registry (bounded by the limit and the budget).
const RETENTION = RetentionRules.parse(
  JSON.stringify([
    { repositories: "retained/*", keepLastTags: 1, untaggedDays: 1 },
    { repositories: "*", untaggedDays: 1 },
    { repositories: "*", keepLastTags: 1 },
  ]),
);

// Token authentication with browse/* public: what an anonymous visitor sees, and a token that may pull hidden/* too.
const TOKEN_AUTH = { AUTH_MODE: "token", PUBLIC_REPOSITORIES: "browse/*" };
let scoped: string;

let image: Awaited<ReturnType<typeof pushImage>>;
let pushes = 0;
// Fixed width: a new repository's name is indexed for search, an entry per character.
const counter = () => String(++pushes).padStart(4, "0");
let digest: string;

beforeAll(async () => {
  image = await pushImage("cost/app", [1000, 2000, 3000]);
  digest = await pushManifest("cost/app", "v1", image);
  // Two tags and an untagged manifest each, long ago.
  for (const repository of ["retained/one", "retained/two"]) {
    for (const tag of ["a", "b"]) await pushManifest(repository, tag, await pushImage(repository, [100]));
    const untagged = JSON.stringify(await pushImage(repository, [200]));
    await pushManifest(repository, await sha256(untagged), untagged);
  }
  await env.DB.prepare("UPDATE manifests SET created_at = 0 WHERE repository GLOB 'retained/*'").run();
  // Found by their description ("browsable"), and a private one by its name.
  for (const repository of ["browse/one", "browse/two", "hidden/browsable"]) {
    const annotations = { "org.opencontainers.image.description": "A browsable image" };
    await pushManifest(repository, "latest", { ...(await pushImage(repository, [100])), annotations });
  }
  scoped = (await createToken("cost-scoped", [{ repository: "hidden/*", actions: ["pull"] }])).token;
});

/** The hot paths: each a function so that it can be run at both sizes (pushes push something new each time). */
const HOT_PATHS: Record<string, () => Promise<Counts & { status: number }>> = {
  "manifest GET by tag": () => measure("/v2/cost/app/manifests/v1"),
  "manifest HEAD by tag": () => measure("/v2/cost/app/manifests/v1", { method: "HEAD" }),
  "manifest GET by digest": () => measure(`/v2/cost/app/manifests/${digest}`),
  "blob GET": () => measure(`/v2/cost/app/blobs/${image.layers[0]!.digest}`),
  "blob HEAD": () => measure(`/v2/cost/app/blobs/${image.layers[1]!.digest}`, { method: "HEAD" }),
  "tags list page": () => measure("/v2/cost/app/tags/list?n=10"),
  "referrers": () => measure(`/v2/cost/app/referrers/${digest}`),
  "catalog page": () => measure("/v2/_catalog?n=50&last=cost/app"),
  "catalog page (scoped)": () => measure("/v2/_catalog?n=50", { headers: { Authorization: basic(scoped) } }, TOKEN_AUTH),
  "search by name": () => measure("/api/search?q=browse"),
  "search (anonymous)": () => measure("/api/search?q=browsable", {}, TOKEN_AUTH),
  "search (scoped)": () => measure("/api/search?q=browsable", { headers: { Authorization: basic(scoped) } }, TOKEN_AUTH),
  "search listing": () => measure("/api/search?n=25"),
  "search listing (anonymous)": () => measure("/api/search?n=25", {}, TOKEN_AUTH),
  "retention pass (dry run)": measureRetention,
  "blob push (monolithic)": async () => {
    const bytes = randomBytes(500);
    return measure(`/v2/cost/blob-push-${counter()}/blobs/uploads/?digest=${await sha256(bytes)}`, { method: "POST", body: bytes, headers: { "Content-Length": "500" } });
  },
  "blob push (known repository)": async () => {
    const bytes = randomBytes(500);
    return measure(`/v2/cost/annotated/blobs/uploads/?digest=${await sha256(bytes)}`, { method: "POST", body: bytes, headers: { "Content-Length": "500" } });
  },
  "manifest PUT, annotated": async () => {
    // The same tag moved to a new image whose annotations differ in their version only: few search entries change.
    const pushed = { ...(await pushImage("cost/annotated", [600])), annotations: { "org.opencontainers.image.description": "The app", "org.opencontainers.image.version": `1.${counter()}` } };
    return measure("/v2/cost/annotated/manifests/latest", { method: "PUT", headers: { "Content-Type": pushed.mediaType }, body: JSON.stringify(pushed) });
  },
  "manifest PUT with a tag": async () => {
    // Each push goes to a new repository of its own, so that every measured request finds the same state around it.
    const repository = `cost/manifest-push-${counter()}`;
    const pushed = await pushImage(repository, [700]);
    return measure(`/v2/${repository}/manifests/latest`, { method: "PUT", headers: { "Content-Type": pushed.mediaType }, body: JSON.stringify(pushed) });
  },
};

describe("the cost of a hot path does not grow with the registry", () => {
  it(`reads and writes as many D1 rows with ${SIZES.join(" as with ")} other repositories`, async () => {
    // Once first, so that what only a first push writes (the repository's row) is behind us.
    for (const run of Object.values(HOT_PATHS)) await run();
    const measured: Record<string, Counts & { status: number }>[] = [];
    let seeded = 0;
    for (const size of SIZES) {
      await seed(seeded, size);
      seeded = size;
      const counts: Record<string, Counts & { status: number }> = {};
      for (const [name, run] of Object.entries(HOT_PATHS)) counts[name] = await run();
      measured.push(counts);
    }
    const [small, large] = measured as [Record<string, Counts & { status: number }>, Record<string, Counts & { status: number }>];
    const table = Object.keys(HOT_PATHS).map((name) => `${name.padEnd(28)} ${JSON.stringify(small[name])} | ${JSON.stringify(large[name])}`);
    console.info(`D1 per request (${SIZES.join(" | ")} other repositories):\n${table.join("\n")}`);
    for (const name of Object.keys(HOT_PATHS)) {
      expect(small[name]!.status, name).toBeLessThan(300);
      const { status: _small, ...few } = small[name]!;
      const { status: _large, ...many } = large[name]!;
      expect({ path: name, ...many }).toEqual({ path: name, ...few });
    }
  }, 120_000);
});
