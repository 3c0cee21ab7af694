import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SEARCH_CANDIDATES, SearchRecords } from "../../src/storage/search-records";
import { call, pushBlob, pushImage, pushManifest } from "./helpers";

const DESCRIPTION = "org.opencontainers.image.description";

/** D1's count of the rows a search reads (meta.rows_read of its statement). */
async function rowsRead(query: string): Promise<number> {
  let rows = 0;
  const db = {
    prepare: (sql: string) => {
      const statement = env.DB.prepare(sql);
      return {
        bind: (...values: unknown[]) => {
          const bound = statement.bind(...values);
          return {
            all: async () => {
              const result = await bound.all();
              rows += result.meta.rows_read;
              return result;
            },
          };
        },
      };
    },
    batch: env.DB.batch.bind(env.DB),
  } as unknown as D1Database;
  await new SearchRecords(db).search(query, null, null, 20);
  return rows;
}

async function found(query: string): Promise<string[]> {
  const response = await call(`/api/search?q=${encodeURIComponent(query)}&n=100`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { repositories: { name: string }[] }).repositories.map((repository) => repository.name);
}

// The index search reads (migrations/0010_search_terms.sql): what it finds, and that it finds what was there before it.
describe("search index", () => {
  it("finds any part of a name, and the starts of the annotations' words", async () => {
    await pushManifest("sterms/big-zebrafish-app", "v1", { ...(await pushImage("sterms/big-zebrafish-app", [10])), annotations: { [DESCRIPTION]: "Feeds the Zebrafish, twice-daily" } });
    await pushBlob("sterms/blobs-only", "x");
    expect(await found("ebrafish")).toEqual(["sterms/big-zebrafish-app"]);
    expect(await found("blobs-on")).toEqual(["sterms/blobs-only"]);
    // In annotations a match starts a word: "daily" does (after "-"), "aily" does not.
    expect(await found("daily")).toEqual(["sterms/big-zebrafish-app"]);
    expect(await found("aily")).toEqual([]);
    expect(await found("feeds the zebrafish, twice")).toEqual(["sterms/big-zebrafish-app"]);
  });

  it("matches queries longer than an entry by their whole text", async () => {
    const name = `sterms/${"long-name-".repeat(5)}end`;
    await pushBlob(name, "x");
    expect(await found(name.slice(3))).toEqual([name]);
    expect(await found(`${name.slice(3, 40)}-and-more`)).toEqual([]);
  });

  it("indexes what was pushed before it, when the migration is applied", async () => {
    // As an older database holds them: a repository and its search row, without entries.
    await env.DB.batch([
      env.DB.prepare("INSERT INTO repositories (name, created_at) VALUES ('sterms/before-the-index', 0)"),
      env.DB.prepare(
        "INSERT INTO repository_search (repository, tag, digest, pushed_at, description, search_text) VALUES ('sterms/before-the-index', 'v1', 'sha256:0', 0, 'Old', 'an old okapi')",
      ),
    ]);
    expect(await found("before-the")).toEqual([]);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0010_"))!;
    const backfill = migration.queries.filter((query) => query.includes("INSERT OR IGNORE INTO search_terms"));
    expect(backfill).toHaveLength(2);
    await env.DB.batch(backfill.map((query) => env.DB.prepare(query)));
    expect(await found("before-the")).toEqual(["sterms/before-the-index"]);
    expect(await found("okapi")).toEqual(["sterms/before-the-index"]);
  });

  it(`ranks a query as common as ${SEARCH_CANDIDATES} index entries among the first of them, the query itself first, reading no more`, async () => {
    // 1,500 repositories whose names contain "quokka" (one entry each for it), and one that is named for it.
    const numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)";
    await env.DB.batch([
      env.DB.prepare(`${numbers} INSERT INTO repositories (name, created_at) SELECT 'sterms/quokka-' || printf('%04d', i), 0 FROM n`),
      env.DB.prepare(`${numbers} INSERT INTO search_terms (term, repository, source) SELECT t.term, t.repository, 0 FROM n JOIN search_name_terms t ON t.repository = 'sterms/quokka-' || printf('%04d', i)`),
    ]);
    await pushBlob("zzz/quokka", "x");
    const names = await found("quokka");
    expect(names[0]).toBe("zzz/quokka");
    expect(names).toHaveLength(100);
    // The rows the query reads are bounded by the candidates, not the 1,501 matches (each candidate reads its
    // entry, its repository and its search row).
    const before = await rowsRead("quokka");
    expect(before).toBeLessThan(SEARCH_CANDIDATES * 4);
    // And no more once there are 1,000 matches more.
    const more = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)";
    await env.DB.batch([
      env.DB.prepare(`${more} INSERT INTO repositories (name, created_at) SELECT 'sterms/more-quokka-' || printf('%04d', i), 0 FROM n`),
      env.DB.prepare(`${more} INSERT INTO search_terms (term, repository, source) SELECT t.term, t.repository, 0 FROM n JOIN search_name_terms t ON t.repository = 'sterms/more-quokka-' || printf('%04d', i)`),
    ]);
    expect(await rowsRead("quokka")).toBe(before);
    expect((await found("quokka"))[0]).toBe("zzz/quokka");
  });
});
