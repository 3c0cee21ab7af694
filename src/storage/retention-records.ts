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

  async repositories(pattern: string): Promise<string[]> {
    const { results } = await this.db
      .prepare("SELECT name FROM repositories WHERE name GLOB ? ORDER BY name")
      .bind(pattern)
      .all<{ name: string }>();
    return results.map((row) => row.name);
  }

  async tagsNewestFirst(repository: string): Promise<{ name: string; digest: string }[]> {
    const { results } = await this.db
      .prepare("SELECT name, digest FROM tags WHERE repository = ? ORDER BY updated_at DESC, name DESC")
      .bind(repository)
      .all<{ name: string; digest: string }>();
    return results;
  }

  /** Deletes the tag only if it still points where it did when it was chosen. */
  async deleteTag(repository: string, tag: string, digest: string): Promise<boolean> {
    const [result] = await this.db.batch([
      this.db.prepare("DELETE FROM tags WHERE repository = ? AND name = ? AND digest = ?").bind(repository, tag, digest),
      ...new SearchRecords(this.db).refresh(repository),
    ]);
    return (result?.meta.changes ?? 0) > 0;
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

  async deleteUntagged(repository: string, digest: string, olderThan: number, deleteReferrers: boolean): Promise<boolean> {
    const chosen = `EXISTS (SELECT 1 FROM manifests m WHERE m.repository = ?1 AND m.digest = ?4 AND ${UNPOINTED} AND ${EXPIRED})`;
    const [, deleted] = await this.db.batch([
      this.db.prepare(`DELETE FROM manifest_references WHERE repository = ?1 AND manifest = ?4 AND ${chosen}`).bind(repository, olderThan, deleteReferrers ? 1 : 0, digest),
      this.db
        .prepare(`DELETE FROM manifests AS m WHERE m.repository = ?1 AND m.digest = ?4 AND ${UNPOINTED} AND ${EXPIRED}`)
        .bind(repository, olderThan, deleteReferrers ? 1 : 0, digest),
      new SearchRecords(this.db).forget(repository, digest),
    ]);
    return (deleted?.meta.changes ?? 0) > 0;
  }
}
