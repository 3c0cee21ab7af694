// SQL for browsing and search: manifest summaries, repositories found by name or annotations, tags newest first.
// The tables, and the views that define what their rows hold, are in migrations/0005_search.sql and
// 0010_search_terms.sql.
import type { Database } from "./database";
import { repositoriesMatching } from "./repository-patterns";

/** How a repository matched a search, best first. */
export const MATCHES = ["exact", "prefix", "substring", "description"] as const;
export type Match = (typeof MATCHES)[number];

export interface RepositoryRecord {
  name: string;
  /** Index into MATCHES (0 for every repository when listing without a query). */
  rank: number;
  description: string | null;
  /** The most recently pushed tag, null when the repository has none. */
  latest: { tag: string; digest: string; pushedAt: number } | null;
  tagCount: number;
}

export interface TagRecord {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  pushedAt: number;
  /** Bytes of config and layers (an index: of all its manifests); null when unknown. */
  size: number | null;
  /** For an index: "os/arch[/variant]" of each image. */
  platforms: string[];
  /** Manifests whose subject this tag's manifest is (signatures, SBOMs, ...), counted per artifactType. */
  referrers: { artifactType: string | null; count: number }[];
  /** Pulls of the tag (GETs and HEADs by tag) as last written by the isolates' flushes, and the last one (null: never). */
  pulls: number;
  lastPulledAt: number | null;
}

/** How a repository's tags are listed: newest push first, or most recently pulled first (never pulled last). */
export type TagOrder = "pushed" | "pulled";

/**
 * Tags (or repositories, by their latest tag) kept by their manifest's stored signature verdict (verified or not) and
 * findings' summary (a critical finding or not): checked on those tables' primary keys for each row the walk reads.
 */
export interface TagFilter {
  signed?: boolean;
  critical?: boolean;
}

const signedOn = (row: string) =>
  `EXISTS (SELECT 1 FROM signature_verdicts v WHERE v.repository = ${row}.repository AND v.digest = ${row}.digest AND v.status = 'verified')`;
const criticalOn = (row: string) =>
  `EXISTS (SELECT 1 FROM vulnerability_summaries z WHERE z.repository = ${row}.repository AND z.digest = ${row}.digest AND z.critical > 0)`;

/**
 * The filter's SQL condition on `row` (a tag `t`, or a repository's search row `s`, whose digest is its latest tag's
 * and null when it has none: neither signed nor critical): fixed text, chosen by the filter's values.
 */
function tagCondition(filter: TagFilter, row: "t" | "s" = "t"): string {
  const parts = ["1"];
  if (filter.signed !== undefined) parts.push(filter.signed ? signedOn(row) : `NOT ${signedOn(row)}`);
  if (filter.critical !== undefined) parts.push(filter.critical ? criticalOn(row) : `NOT ${criticalOn(row)}`);
  return parts.join(" AND ");
}

export const isFiltering = (filter: TagFilter) => filter.signed !== undefined || filter.critical !== undefined;

/** Repositories a filtered listing reads at most per page (it may come back short, with where to go on). */
export const FILTERED_SCAN = 1000;

export interface ManifestSummary {
  digest: string;
  size: number | null;
  platforms: string[];
  createdAt: number;
  subject: string | null;
  artifactType: string | null;
}

/** A position in a ranked or time-ordered listing: the sort key and name of the last item shown. */
export interface After {
  key: number;
  name: string;
}

interface RepositoryRow {
  name: string;
  rank: number;
  description: string | null;
  tag: string | null;
  digest: string | null;
  pushed_at: number | null;
  tag_count: number;
}

interface TagRow {
  name: string;
  digest: string;
  media_type: string;
  artifact_type: string | null;
  pushed_at: number;
  content_size: number | null;
  platforms: string | null;
  referrers: string;
  pulls: number | null;
  last_pulled_at: number | null;
}

const toRepository = (row: RepositoryRow): RepositoryRecord => ({
  name: row.name,
  rank: row.rank,
  description: row.description,
  latest: row.tag !== null ? { tag: row.tag, digest: row.digest!, pushedAt: row.pushed_at! } : null,
  tagCount: row.tag_count,
});

const toTag = (row: TagRow): TagRecord => ({
  name: row.name,
  digest: row.digest,
  mediaType: row.media_type,
  artifactType: row.artifact_type,
  pushedAt: row.pushed_at,
  size: row.content_size,
  platforms: row.platforms ? (JSON.parse(row.platforms) as string[]) : [],
  referrers: JSON.parse(row.referrers) as TagRecord["referrers"],
  pulls: row.pulls ?? 0,
  lastPulledAt: row.last_pulled_at,
});

// Ranks a repository for query ?1 (lowercase): its name is the query, or ends with "/" and the query (0); starts
// with it, or a path component does (1); contains it (2); its latest manifest's annotations contain it (3). Only
// CANDIDATES are ranked, so annotations match where a word of them starts with the query.
const RANK = `CASE
  WHEN r.name = ?1 OR substr(r.name, -length(?1) - 1) = '/' || ?1 THEN 0
  WHEN substr(r.name, 1, length(?1)) = ?1 OR instr(r.name, '/' || ?1) > 0 THEN 1
  WHEN instr(r.name, ?1) > 0 THEN 2
  WHEN instr(s.search_text, ?1) > 0 THEN 3
END`;

// The repositories where query ?1 may match (migrations/0010_search_terms.sql): the first SEARCH_CANDIDATES entries
// starting with its first 32 characters, in the index's order. A query that common (in every repository of a large
// registry) would otherwise read and rank every match on every request; in term order an entry that is the query
// itself (a name that is it or ends with it, rank 0) comes first, before longer ones.
export const SEARCH_CANDIDATES = 1000;
const CANDIDATES = `SELECT DISTINCT repository AS name FROM (SELECT repository FROM search_terms
  WHERE term >= substr(?1, 1, 32) AND term < substr(?1, 1, 32) || char(1114111) ORDER BY term LIMIT ${SEARCH_CANDIDATES})`;

// A repository's row in a listing, from its search row.
const LISTED = `r.name, 0 AS rank, s.description, s.tag, s.digest, s.pushed_at,
  (SELECT COUNT(*) FROM tags t WHERE t.repository = r.name) AS tag_count
  FROM repositories r LEFT JOIN repository_search s ON s.repository = r.name`;

const TAG_COLUMNS = `t.name, t.digest, m.media_type, m.artifact_type, t.updated_at AS pushed_at, s.content_size, s.platforms,
  p.pulls, p.last_pulled_at,
  (SELECT json_group_array(json_object('artifactType', g.artifact_type, 'count', g.n)) FROM (
     SELECT x.artifact_type, COUNT(*) AS n FROM manifests x WHERE x.repository = t.repository AND x.subject = t.digest
     GROUP BY x.artifact_type ORDER BY x.artifact_type) g) AS referrers
  FROM tags t
  JOIN manifests m ON m.repository = t.repository AND m.digest = t.digest
  LEFT JOIN manifest_summaries s ON s.repository = t.repository AND s.digest = t.digest
  LEFT JOIN tag_pulls p ON p.repository = t.repository AND p.tag = t.name`;

export class SearchRecords {
  constructor(private readonly db: Database) {}

  // The statements below go into the batches that store manifests and move or delete tags (ManifestRecords,
  // RetentionRecords), so that summaries and the search index change in the same transaction as what they describe.

  /** Records the summary of a manifest just stored (nothing when it was not). */
  summarize(repository: string, digest: string): D1PreparedStatement {
    return this.db
      .prepare("INSERT OR REPLACE INTO manifest_summaries SELECT * FROM manifest_facts WHERE repository = ?1 AND digest = ?2")
      .bind(repository, digest);
  }

  /** Drops the summary of a manifest once it is deleted (nothing while it exists). */
  forget(repository: string, digest: string): D1PreparedStatement {
    return this.db
      .prepare(
        `DELETE FROM manifest_summaries WHERE repository = ?1 AND digest = ?2
           AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository = ?1 AND digest = ?2)`,
      )
      .bind(repository, digest);
  }

  /**
   * Indexes a repository's name for search, once the repository exists: in the batches that make one (nothing when
   * it was not made, or is indexed already).
   */
  indexName(repository: string): D1PreparedStatement {
    return this.db
      .prepare(
        `INSERT OR IGNORE INTO search_terms (term, repository, source) SELECT term, repository, 0 FROM search_name_terms
         WHERE repository = ?1 AND NOT EXISTS (SELECT 1 FROM search_terms WHERE term = substr(?1, 1, 32) AND repository = ?1 AND source = 0)`,
      )
      .bind(repository);
  }

  /** Brings a repository's search row in line with its tags: after any statement that adds, moves or deletes one. */
  refresh(repository: string): D1PreparedStatement[] {
    return [
      this.db.prepare("DELETE FROM repository_search WHERE repository = ?").bind(repository),
      this.db.prepare("INSERT INTO repository_search SELECT * FROM repository_latest WHERE repository = ?").bind(repository),
      // A push with a tag may be what made the repository.
      this.indexName(repository),
      // The annotations' entries that went, then those that came: a push that changes little writes little.
      this.db
        .prepare(
          `DELETE FROM search_terms WHERE source = 1 AND repository = ?1
             AND term NOT IN (SELECT term FROM search_annotation_terms WHERE repository = ?1)`,
        )
        .bind(repository),
      this.db
        .prepare("INSERT OR IGNORE INTO search_terms (term, repository, source) SELECT term, repository, 1 FROM search_annotation_terms WHERE repository = ?1")
        .bind(repository),
    ];
  }

  /**
   * Repositories matching `query` (lowercase; empty matches all), best match first then by name, after `after`
   * (rank and name of the last one shown); with patterns (GLOB, `*` only), only those matching one of them. A query
   * reads the repositories it may match (found in search_terms), a listing the page (a seek per pattern).
   */
  async search(query: string, patterns: string[] | null, after: After | null, limit: number, filter: TagFilter = {}): Promise<RepositoryRecord[]> {
    if (query === "") return this.list(patterns, after?.name ?? "", limit);
    const { results } = await this.db
      .prepare(
        `SELECT f.*, (SELECT COUNT(*) FROM tags t WHERE t.repository = f.name) AS tag_count FROM (
           SELECT * FROM (
             SELECT r.name, ${RANK} AS rank, s.description, s.tag, s.digest, s.pushed_at
             FROM (${CANDIDATES}) r LEFT JOIN repository_search s ON s.repository = r.name
             WHERE (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(?2) p WHERE r.name GLOB p.value)) AND ${tagCondition(filter, "s")})
           WHERE rank IS NOT NULL AND (rank > ?3 OR (rank = ?3 AND name > ?4))
           ORDER BY rank, name LIMIT ?5) f
         ORDER BY f.rank, f.name`,
      )
      .bind(query, patterns === null ? null : JSON.stringify(patterns), after?.key ?? -1, after?.name ?? "", limit)
      .all<RepositoryRow>();
    return results.map(toRepository);
  }

  /** Repositories by name after `after` (with patterns, those matching one), at most `limit`. */
  private async list(patterns: string[] | null, after: string, limit: number): Promise<RepositoryRecord[]> {
    if (patterns === null) {
      const { results } = await this.db.prepare(`SELECT ${LISTED} WHERE r.name > ?1 ORDER BY r.name LIMIT ?2`).bind(after, limit).all<RepositoryRow>();
      return results.map(toRepository);
    }
    const names = await repositoriesMatching(this.db, patterns, after, limit);
    if (names.length === 0) return [];
    const { results } = await this.db
      .prepare(`SELECT ${LISTED} WHERE r.name IN (SELECT value FROM json_each(?1)) ORDER BY r.name`)
      .bind(JSON.stringify(names))
      .all<RepositoryRow>();
    return results.map(toRepository);
  }

  /**
   * Repositories by name after `after` whose latest tag passes the filter, at most `limit`: of the next FILTERED_SCAN
   * names (with patterns, those matching one), so a sparse filter reads a bounded page, and `scannedTo` is the last
   * name read when more may follow it.
   */
  async listFiltered(patterns: string[] | null, after: string, limit: number, filter: TagFilter): Promise<{ records: RepositoryRecord[]; scannedTo: string | null }> {
    const names =
      patterns === null
        ? (await this.db.prepare("SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2").bind(after, FILTERED_SCAN).all<{ name: string }>()).results.map((row) => row.name)
        : await repositoriesMatching(this.db, patterns, after, FILTERED_SCAN);
    const scannedTo = names.length === FILTERED_SCAN ? names.at(-1)! : null;
    if (names.length === 0) return { records: [], scannedTo };
    const { results } = await this.db
      .prepare(`SELECT ${LISTED} WHERE r.name IN (SELECT value FROM json_each(?1)) AND ${tagCondition(filter, "s")} ORDER BY r.name LIMIT ?2`)
      .bind(JSON.stringify(names), limit)
      .all<RepositoryRow>();
    return { records: results.map(toRepository), scannedTo };
  }

  async repository(name: string): Promise<RepositoryRecord | null> {
    const row = await this.db.prepare(`SELECT ${LISTED} WHERE r.name = ?`).bind(name).first<RepositoryRow>();
    return row ? toRepository(row) : null;
  }

  /** Tags newest first (by push), after `after` (push time and name of the last one shown). */
  /**
   * A page of a repository's tags after `after`. By push: an index seek. By last pull (0 for never): the repository's
   * tags are sorted, as many rows as it has tags, whatever the size of the registry. A filter is checked on each tag
   * the walk reads: a sparse one reads up to the repository's tags.
   */
  async tags(repository: string, after: After | null, limit: number, order: TagOrder = "pushed", filter: TagFilter = {}): Promise<TagRecord[]> {
    const key = order === "pushed" ? "t.updated_at" : "COALESCE(p.last_pulled_at, 0)";
    const { results } = await this.db
      .prepare(
        `SELECT ${TAG_COLUMNS}
         WHERE t.repository = ?1 AND (?2 IS NULL OR ${key} < ?2 OR (${key} = ?2 AND t.name < ?3)) AND ${tagCondition(filter)}
         ORDER BY ${key} DESC, t.name DESC LIMIT ?4`,
      )
      .bind(repository, after?.key ?? null, after?.name ?? "", limit)
      .all<TagRow>();
    return results.map(toTag);
  }

  async tag(repository: string, name: string): Promise<TagRecord | null> {
    const row = await this.db
      .prepare(`SELECT ${TAG_COLUMNS} WHERE t.repository = ?1 AND t.name = ?2`)
      .bind(repository, name)
      .first<TagRow>();
    return row ? toTag(row) : null;
  }

  /** Summaries of the given manifests of a repository (those stored), for an index's images or one manifest. */
  async summaries(repository: string, digests: string[]): Promise<Map<string, ManifestSummary>> {
    if (digests.length === 0) return new Map();
    const { results } = await this.db
      .prepare(
        `SELECT m.digest, s.content_size, s.platforms, m.created_at, m.subject, m.artifact_type FROM manifests m
         LEFT JOIN manifest_summaries s ON s.repository = m.repository AND s.digest = m.digest
         WHERE m.repository = ?1 AND m.digest IN (SELECT value FROM json_each(?2))`,
      )
      .bind(repository, JSON.stringify(digests))
      .all<{ digest: string; content_size: number | null; platforms: string | null; created_at: number; subject: string | null; artifact_type: string | null }>();
    return new Map(
      results.map((row) => [
        row.digest,
        {
          digest: row.digest,
          size: row.content_size,
          platforms: row.platforms ? (JSON.parse(row.platforms) as string[]) : [],
          createdAt: row.created_at,
          subject: row.subject,
          artifactType: row.artifact_type,
        },
      ]),
    );
  }
}
