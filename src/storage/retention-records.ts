// SQL for retention rules. Deletions re-check, in the statement itself, that nothing points at what they delete.
import { SearchRecords } from "./search-records";

// Untagged, and no index of its repository lists it.
const UNPOINTED = `NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = m.repository AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository = m.repository AND r.kind = 'manifest' AND r.child = m.digest)`;

// Old enough, unless it is a referrer: those follow their subject (kept while it exists, gone with it if asked).
const EXPIRED = `(CASE WHEN m.subject IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository = m.repository AND s.digest = m.subject)
  THEN (?3 = 1 OR m.created_at < ?2)
  ELSE (m.subject IS NULL AND m.created_at < ?2) END)`;

export class RetentionRecords {
  constructor(private readonly db: D1Database) {}

  /** Repositories matching the pattern after `after`, in name order, at most `limit`. */
  async repositories(pattern: string, after: string, limit: number): Promise<string[]> {
    const { results } = await this.db
      .prepare("SELECT name FROM repositories WHERE name > ?2 AND name GLOB ?1 ORDER BY name LIMIT ?3")
      .bind(pattern, after, limit)
      .all<{ name: string }>();
    return results.map((row) => row.name);
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

  /** Deletes the tags, each only if it still points where it did when it was chosen, in one batch; returns those deleted. */
  async deleteTags<T extends { repository: string; name: string; digest: string }>(tags: T[]): Promise<T[]> {
    if (tags.length === 0) return [];
    const search = new SearchRecords(this.db);
    const repositories = [...new Set(tags.map((tag) => tag.repository))];
    const results = await this.db.batch([
      ...tags.map((tag) => this.db.prepare("DELETE FROM tags WHERE repository = ? AND name = ? AND digest = ?").bind(tag.repository, tag.name, tag.digest)),
      ...repositories.flatMap((repository) => search.refresh(repository)),
    ]);
    return tags.filter((_, index) => (results[index]?.meta.changes ?? 0) > 0);
  }

  async untaggedManifests(pattern: string, olderThan: number, deleteReferrers: boolean, limit: number) {
    const { results } = await this.db
      .prepare(
        `SELECT m.repository, m.digest, m.size FROM manifests m
         WHERE m.repository GLOB ?1 AND ${UNPOINTED} AND ${EXPIRED}
         ORDER BY m.created_at LIMIT ?4`,
      )
      .bind(pattern, olderThan, deleteReferrers ? 1 : 0, limit)
      .all<{ repository: string; digest: string; size: number }>();
    return results;
  }

  /** Deletes the chosen manifests, each re-checked in its own statements, in one batch; returns those deleted. */
  async deleteUntagged<T extends { repository: string; digest: string }>(candidates: T[], olderThan: number, deleteReferrers: boolean): Promise<T[]> {
    if (candidates.length === 0) return [];
    const statements = candidates.flatMap(({ repository, digest }) => {
      const chosen = `EXISTS (SELECT 1 FROM manifests m WHERE m.repository = ?1 AND m.digest = ?4 AND ${UNPOINTED} AND ${EXPIRED})`;
      const bind = [repository, olderThan, deleteReferrers ? 1 : 0, digest] as const;
      return [
        this.db.prepare(`DELETE FROM manifest_references WHERE repository = ?1 AND manifest = ?4 AND ${chosen}`).bind(...bind),
        this.db.prepare(`DELETE FROM manifests AS m WHERE m.repository = ?1 AND m.digest = ?4 AND ${UNPOINTED} AND ${EXPIRED}`).bind(...bind),
        new SearchRecords(this.db).forget(repository, digest),
      ];
    });
    const results = await this.db.batch(statements);
    return candidates.filter((_, index) => (results[index * 3 + 1]?.meta.changes ?? 0) > 0);
  }
}
