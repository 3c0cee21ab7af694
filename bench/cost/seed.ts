// A large registry made straight in D1 with SQL (recursive CTEs), no uploads: repository i gets ten tags v1..v10,
// each on a manifest of its own that references the repository's config and layer blobs, and every row a push or a
// pull would have written around them (blob rows and links, references, summaries, search row and terms, pull
// counts). Every tenth repository is under the mirror's prefix "hub", with its mirror rows. The rest are named
// aaa/…, ccc/… and zzz/… so that they sort before, between and after the repositories measured (bench/…, hub/…).
// 100,000 repositories: 1 million tags and manifests, 2 million references, about 9.5 million rows in all.

export const TAGS_PER_REPOSITORY = 10;
// Repositories seeded per batch of statements (each statement of a batch runs over this many).
const CHUNK = 10_000;

const NAME = "CASE WHEN i % 10 = 0 THEN 'hub/seeded-' ELSE substr('aaa/ccc/zzz/', 1 + 4 * (i % 3), 4) || 'seeded-' END || i";
const HEX = "printf('%060x', i)";
const CONFIG = `'sha256:' || ${HEX} || 'c0c0'`;
const LAYER = `'sha256:' || ${HEX} || 'a0a0'`;
const MANIFEST = `'sha256:' || ${HEX} || printf('ff%02x', j)`;
const CONFIG_SIZE = 1_000;
const LAYER_SIZE = 100_000;
const BODY =
  `'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
  `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"' || ${CONFIG} || '","size":${CONFIG_SIZE}},` +
  `"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"' || ${LAYER} || '","size":${LAYER_SIZE}}],` +
  `"annotations":{"org.opencontainers.image.version":"' || j || '"}}'`;

/**
 * One repository whose name and digests sort after every other in each index (zzzzzzzz/last, sha256:ff…ff). D1
 * counts a row read for the step an index lookup takes past its last match, when there is a row there: in a registry
 * of any real size there always is, but a small one would read a row less when a lookup's key (a random digest) is
 * the largest, and the counts would differ by chance. Made once, before the first size.
 */
export async function seedLastKeys(db: D1Database): Promise<void> {
  const repository = "zzzzzzzz/last";
  const last = `sha256:${"f".repeat(64)}`;
  const config = `sha256:${"f".repeat(63)}e`;
  const body = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 2 }, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: last, size: 2 }] });
  await db.batch([
    db.prepare("INSERT INTO repositories (name, created_at) VALUES (?1, 0)").bind(repository),
    db.prepare("INSERT INTO blobs (digest, size, object_key, created_at) VALUES (?1, 2, 'blobs/seeded/last-config', 0), (?2, 2, 'blobs/seeded/last', 0)").bind(config, last),
    db.prepare("INSERT INTO repository_blobs (repository, digest, created_at) VALUES (?1, ?2, 0), (?1, ?3, 0)").bind(repository, config, last),
    db.prepare("INSERT INTO manifests (repository, digest, media_type, size, body, created_at) VALUES (?1, ?2, 'application/vnd.oci.image.manifest.v1+json', length(?3), ?3, 0)").bind(repository, last, body),
    db.prepare("INSERT INTO manifest_references (repository, manifest, child, kind) VALUES (?1, ?2, ?3, 'blob'), (?1, ?2, ?2, 'blob')").bind(repository, last, config),
    db.prepare("INSERT INTO tags (repository, name, digest, updated_at) VALUES (?1, 'latest', ?2, 0)").bind(repository, last),
    db.prepare("INSERT INTO mirror_contents (prefix, repository, digest, bytes, last_pulled_at) VALUES ('hub', ?1, ?2, 4, 0)").bind(repository, last),
  ]);
}

/** Adds repositories from+1 .. to (numbered as above) to the registry. */
export async function seedRegistry(db: D1Database, from: number, to: number): Promise<void> {
  for (let first = from + 1; first <= to; first += CHUNK) {
    const last = Math.min(to, first + CHUNK - 1);
    const repositories = "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)";
    const tags = `${repositories}, t(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM t WHERE j < ${TAGS_PER_REPOSITORY})`;
    const mirrored = "WHERE i % 10 = 0";
    const statement = (sql: string) => db.prepare(sql).bind(first, last);
    await db.batch([
      statement(`${repositories} INSERT INTO repositories (name, created_at) SELECT ${NAME}, 0 FROM n`),
      statement(
        `${repositories} INSERT INTO blobs (digest, size, object_key, created_at) ` +
          `SELECT ${CONFIG}, ${CONFIG_SIZE}, 'blobs/seeded/' || ${HEX} || 'c0c0', 0 FROM n ` +
          `UNION ALL SELECT ${LAYER}, ${LAYER_SIZE}, 'blobs/seeded/' || ${HEX} || 'a0a0', 0 FROM n`,
      ),
      statement(
        `${repositories} INSERT INTO repository_blobs (repository, digest, created_at) ` +
          `SELECT ${NAME}, ${CONFIG}, 0 FROM n UNION ALL SELECT ${NAME}, ${LAYER}, 0 FROM n`,
      ),
      statement(
        `${tags} INSERT INTO manifests (repository, digest, media_type, size, body, created_at) ` +
          `SELECT ${NAME}, ${MANIFEST}, 'application/vnd.oci.image.manifest.v1+json', length(${BODY}), ${BODY}, j FROM n, t`,
      ),
      statement(
        `${tags} INSERT INTO manifest_references (repository, manifest, child, kind) ` +
          `SELECT ${NAME}, ${MANIFEST}, ${CONFIG}, 'blob' FROM n, t UNION ALL SELECT ${NAME}, ${MANIFEST}, ${LAYER}, 'blob' FROM n, t`,
      ),
      statement(
        `${tags} INSERT INTO manifest_summaries (repository, digest, content_size, platforms) ` +
          `SELECT ${NAME}, ${MANIFEST}, ${CONFIG_SIZE + LAYER_SIZE}, NULL FROM n, t`,
      ),
      statement(`${tags} INSERT INTO tags (repository, name, digest, updated_at) SELECT ${NAME}, 'v' || j, ${MANIFEST}, j FROM n, t`),
      statement(
        `${repositories} INSERT INTO repository_search (repository, tag, digest, pushed_at, description, search_text) ` +
          `SELECT ${NAME}, 'v${TAGS_PER_REPOSITORY}', 'sha256:' || ${HEX} || printf('ff%02x', ${TAGS_PER_REPOSITORY}), ${TAGS_PER_REPOSITORY}, NULL, '' FROM n`,
      ),
      // A search entry per position of the name, as a push makes them (migrations/0010_search_terms.sql).
      statement(`${repositories} INSERT INTO search_terms (term, repository, source) SELECT t.term, t.repository, 0 FROM n JOIN search_name_terms t ON t.repository = ${NAME}`),
      statement(`${tags} INSERT INTO manifest_pulls (repository, digest, pulls, last_pulled_at) SELECT ${NAME}, ${MANIFEST}, j, j FROM n, t`),
      statement(`${tags} INSERT INTO tag_pulls (repository, tag, pulls, last_pulled_at) SELECT ${NAME}, 'v' || j, j, j FROM n, t`),
      statement(`${tags} INSERT INTO mirror_checks (repository, tag, checked_at) SELECT ${NAME}, 'v' || j, j FROM n, t ${mirrored}`),
      statement(
        `${tags} INSERT INTO mirror_contents (prefix, repository, digest, bytes, last_pulled_at) ` +
          `SELECT 'hub', ${NAME}, ${MANIFEST}, ${CONFIG_SIZE + LAYER_SIZE}, j FROM n, t ${mirrored}`,
      ),
      // The counters a push keeps: what the seeded blobs add.
      db
        .prepare("UPDATE storage_usage SET bytes = bytes + ?1, blobs = blobs + ?2 WHERE id = 1")
        .bind((last - first + 1) * (CONFIG_SIZE + LAYER_SIZE), (last - first + 1) * 2),
    ]);
  }
}

/** Rows per table, to say what was seeded. */
export async function tableSizes(db: D1Database): Promise<Record<string, number>> {
  const tables = ["repositories", "tags", "manifests", "manifest_references", "blobs", "repository_blobs", "search_terms"];
  const counted = await db.batch(tables.map((table) => db.prepare(`SELECT COUNT(*) AS n FROM ${table}`)));
  return Object.fromEntries(tables.map((table, index) => [table, (counted[index]!.results[0] as { n: number }).n]));
}
