// SQL for retention rules. Deletions re-check, in the statement itself, that nothing points at what they delete.
import { AuditRecords, type AuditNote } from "./audit-records";
import { rangeOf, repositoriesMatching } from "./repository-patterns";
import { SearchRecords } from "./search-records";

// Untagged, and no index of its repository lists it.
const UNPOINTED = `NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository = m.repository AND r.kind = 'manifest' AND r.child = m.digest)`;

// Old enough, unless it is a referrer: those follow their subject (kept while it exists, gone with it if asked).
const EXPIRED = `(CASE WHEN m.subject IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository = m.repository AND s.digest = m.subject)
  THEN (?3 = 1 OR m.created_at < ?2)
  ELSE (m.subject IS NULL AND m.created_at < ?2) END)`;

/** A manifest's place in a walk over manifests. */
export interface ManifestKey {
  repository: string;
  digest: string;
}

export class RetentionRecords {
  constructor(private readonly db: D1Database) {}

  /** Repositories matching the pattern after `after`, in name order, at most `limit` (read from its range). */
  async repositories(pattern: string, after: string, limit: number): Promise<string[]> {
    return repositoriesMatching(this.db, [pattern], after, limit);
  }

  /** Of these repositories' tags, those after the newest `keep` of their repository (newest first by push). */
  async tagsBeyond(repositories: string[], keep: number): Promise<{ repository: string; name: string; digest: string }[]> {
    if (repositories.length === 0) return [];
    const { results } = await this.db
      .prepare(
        `SELECT repository, name, digest FROM (
           SELECT t.repository, t.name, t.digest,
             ROW_NUMBER() OVER (PARTITION BY t.repository ORDER BY t.updated_at DESC, t.name DESC) AS position
           FROM tags t WHERE t.repository IN (SELECT value FROM json_each(?1)))
         WHERE position > ?2 ORDER BY repository, position`,
      )
      .bind(JSON.stringify(repositories), keep)
      .all<{ repository: string; name: string; digest: string }>();
    return results;
  }

  /**
   * Deletes the tags, each only if it still points where it did when it was chosen, in one batch with an audit row
   * for each deleted; returns those deleted.
   */
  async deleteTags<T extends { repository: string; name: string; digest: string }>(tags: T[], note: AuditNote): Promise<T[]> {
    if (tags.length === 0) return [];
    const search = new SearchRecords(this.db);
    const repositories = [...new Set(tags.map((tag) => tag.repository))];
    const results = await this.db.batch([
      ...tags.flatMap((tag) => [
        this.db.prepare("DELETE FROM tags WHERE repository = ? AND name = ? AND digest = ?").bind(tag.repository, tag.name, tag.digest),
        tagDeleted(this.db, tag, note),
      ]),
      ...repositories.flatMap((repository) => search.refresh(repository)),
    ]);
    return tags.filter((_, index) => (results[index * 2]?.meta.changes ?? 0) > 0);
  }

  /**
   * The next `limit` manifests of the pattern's range after `after`, in (repository, digest) order, and of those the
   * untagged and expired ones of repositories matching the pattern; `next` is where the walk stopped (null: at the end
   * of the range). A pass reads `limit` manifests and a few rows for each, whatever the registry holds.
   */
  async untaggedManifests(pattern: string, after: ManifestKey | null, olderThan: number, deleteReferrers: boolean, limit: number) {
    const { from, to } = rangeOf(pattern);
    const start = after ?? { repository: from, digest: "" };
    const { results } = await this.db
      .prepare(
        `SELECT m.repository, m.digest, m.size, (m.repository GLOB ?1 AND ${UNPOINTED} AND ${EXPIRED}) AS chosen
         FROM manifests m WHERE (m.repository, m.digest) > (?5, ?6) AND m.repository < ?7
         ORDER BY m.repository, m.digest LIMIT ?4`,
      )
      .bind(pattern, olderThan, deleteReferrers ? 1 : 0, limit, start.repository, start.digest, to)
      .all<{ repository: string; digest: string; size: number; chosen: number }>();
    const last = results.at(-1);
    return {
      chosen: results.filter((row) => row.chosen === 1).map(({ repository, digest, size }) => ({ repository, digest, size })),
      next: results.length === limit && last ? { repository: last.repository, digest: last.digest } : null,
    };
  }

  /**
   * Deletes the chosen manifests, each re-checked in its own statements, in one batch with an audit row for each
   * deleted; returns those deleted.
   */
  async deleteUntagged<T extends { repository: string; digest: string }>(candidates: T[], olderThan: number, deleteReferrers: boolean, note: AuditNote): Promise<T[]> {
    if (candidates.length === 0) return [];
    const statements = candidates.flatMap(({ repository, digest }) => {
      const chosen = `EXISTS (SELECT 1 FROM manifests m WHERE m.repository = ?1 AND m.digest = ?4 AND ${UNPOINTED} AND ${EXPIRED})`;
      const bind = [repository, olderThan, deleteReferrers ? 1 : 0, digest] as const;
      return [
        this.db.prepare(`DELETE FROM manifest_references WHERE repository = ?1 AND manifest = ?4 AND ${chosen}`).bind(...bind),
        this.db.prepare(`DELETE FROM manifests AS m WHERE m.repository = ?1 AND m.digest = ?4 AND ${UNPOINTED} AND ${EXPIRED}`).bind(...bind),
        manifestDeleted(this.db, { repository, digest }, note),
        new SearchRecords(this.db).forget(repository, digest),
      ];
    });
    const results = await this.db.batch(statements);
    return candidates.filter((_, index) => (results[index * 4 + 1]?.meta.changes ?? 0) > 0);
  }
}

// notPulledDays: not pulled since the cutoff ?2, neither by tag nor (its manifest) by digest.
const TAG_NOT_PULLED = `NOT EXISTS (SELECT 1 FROM tag_pulls p WHERE p.repository = t.repository AND p.tag = t.name AND p.last_pulled_at >= ?2)
  AND NOT EXISTS (SELECT 1 FROM manifest_pulls q WHERE q.repository = t.repository AND q.digest = t.digest AND q.last_pulled_at >= ?2)`;
const MANIFEST_NOT_PULLED = `m.created_at < ?2
  AND NOT EXISTS (SELECT 1 FROM manifest_pulls q WHERE q.repository = m.repository AND q.digest = m.digest AND q.last_pulled_at >= ?2)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository = m.repository AND r.kind = 'manifest' AND r.child = m.digest)`;

/** SQL for the notPulledDays rule (pull statistics in tag_pulls and manifest_pulls). */
export class UnpulledRecords {
  constructor(private readonly db: D1Database) {}

  /** Of these repositories' tags, those pushed before the cutoff and not pulled since (by tag or by digest). */
  async tags(repositories: string[], cutoff: number): Promise<{ repository: string; name: string; digest: string }[]> {
    if (repositories.length === 0) return [];
    const { results } = await this.db
      .prepare(
        `SELECT t.repository, t.name, t.digest FROM tags t
         WHERE t.repository IN (SELECT value FROM json_each(?1)) AND t.updated_at < ?2 AND ${TAG_NOT_PULLED}
         ORDER BY t.repository, t.name`,
      )
      .bind(JSON.stringify(repositories), cutoff)
      .all<{ repository: string; name: string; digest: string }>();
    return results;
  }

  /** Deletes the tags, each only if it still points where it did and was still not pulled, in one batch (audited). */
  async deleteTags<T extends { repository: string; name: string; digest: string }>(tags: T[], cutoff: number, note: AuditNote): Promise<T[]> {
    if (tags.length === 0) return [];
    const search = new SearchRecords(this.db);
    const repositories = [...new Set(tags.map((tag) => tag.repository))];
    const results = await this.db.batch([
      ...tags.flatMap((tag) => [
        this.db
          .prepare(`DELETE FROM tags AS t WHERE t.repository = ?1 AND t.name = ?3 AND t.digest = ?4 AND t.updated_at < ?2 AND ${TAG_NOT_PULLED}`)
          .bind(tag.repository, cutoff, tag.name, tag.digest),
        tagDeleted(this.db, tag, note),
      ]),
      // A tag pushed again later starts counting afresh.
      ...tags.map((tag) =>
        this.db
          .prepare("DELETE FROM tag_pulls WHERE repository = ?1 AND tag = ?2 AND NOT EXISTS (SELECT 1 FROM tags WHERE repository = ?1 AND name = ?2)")
          .bind(tag.repository, tag.name),
      ),
      ...repositories.flatMap((repository) => search.refresh(repository)),
    ]);
    return tags.filter((_, index) => (results[index * 2]?.meta.changes ?? 0) > 0);
  }

  /** Of these manifests, those the deletion of these tags would leave unpointed and that were not pulled (dry run). */
  async wouldGo(manifests: { repository: string; digest: string; tags: string[] }[], cutoff: number) {
    if (manifests.length === 0) return [];
    const { results } = await this.db
      .prepare(
        `SELECT m.repository, m.digest, m.size FROM json_each(?1) c
         JOIN manifests m ON m.repository = c.value ->> '$.repository' AND m.digest = c.value ->> '$.digest'
         WHERE ${MANIFEST_NOT_PULLED}
           AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest
             AND t.name NOT IN (SELECT value FROM json_each(c.value -> '$.tags')))`,
      )
      .bind(JSON.stringify(manifests), cutoff)
      .all<{ repository: string; digest: string; size: number }>();
    return results;
  }

  /** Deletes the manifests no tag or index points at and not pushed or pulled since the cutoff, in one batch (audited). */
  async deleteManifests(manifests: { repository: string; digest: string }[], cutoff: number, note: AuditNote) {
    if (manifests.length === 0) return [];
    const gone = `NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest) AND ${MANIFEST_NOT_PULLED}`;
    const sizes = await this.db
      .prepare("SELECT m.repository, m.digest, m.size FROM json_each(?1) c JOIN manifests m ON m.repository = c.value ->> '$.repository' AND m.digest = c.value ->> '$.digest'")
      .bind(JSON.stringify(manifests))
      .all<{ repository: string; digest: string; size: number }>();
    const statements = sizes.results.flatMap(({ repository, digest }) => [
      this.db
        .prepare(`DELETE FROM manifest_references WHERE repository = ?1 AND manifest = ?3 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository = ?1 AND m.digest = ?3 AND ${gone})`)
        .bind(repository, cutoff, digest),
      this.db.prepare(`DELETE FROM manifests AS m WHERE m.repository = ?1 AND m.digest = ?3 AND ${gone}`).bind(repository, cutoff, digest),
      manifestDeleted(this.db, { repository, digest }, note),
      new SearchRecords(this.db).forget(repository, digest),
      this.db
        .prepare("DELETE FROM manifest_pulls WHERE repository = ?1 AND digest = ?2 AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository = ?1 AND digest = ?2)")
        .bind(repository, digest),
    ]);
    if (statements.length === 0) return [];
    const results = await this.db.batch(statements);
    return sizes.results.filter((_, index) => (results[index * 5 + 1]?.meta.changes ?? 0) > 0);
  }
}

// Audit rows for retention's deletions, each right after its delete: written when it deleted (changes() is its count).
function tagDeleted(db: D1Database, tag: { repository: string; name: string; digest: string }, note: AuditNote): D1PreparedStatement {
  const event = { action: "tag.delete", repository: tag.repository, target: tag.name, detail: { ...note.detail, digest: tag.digest } } as const;
  return new AuditRecords(db).insert(note.by, event, { where: "changes() = 1" });
}

function manifestDeleted(db: D1Database, manifest: { repository: string; digest: string }, note: AuditNote): D1PreparedStatement {
  const event = { action: "manifest.delete", repository: manifest.repository, target: manifest.digest, detail: note.detail } as const;
  return new AuditRecords(db).insert(note.by, event, { where: "changes() = 1" });
}
