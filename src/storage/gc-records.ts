// SQL for garbage collection. Every condition that makes a blob garbage is re-checked inside the statement that
// acts on it, so a reference or link made at any moment between two statements is always seen.

export interface GarbageBlob {
  digest: string;
  size: number;
  objectKey: string;
  /** The repositories it was still linked into when deleted. */
  repositories?: string[];
}

// A blob is unreferenced when no manifest in any repository lists it.
const UNREFERENCED = "NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.kind = 'blob' AND r.child = b.digest)";

interface Row {
  digest: string;
  size: number;
  object_key: string;
}
const toGarbage = (row: Row): GarbageBlob => ({ digest: row.digest, size: row.size, objectKey: row.object_key });

export class GcRecords {
  constructor(private readonly db: D1Database) {}

  /**
   * Marked blobs that were referenced or linked since their mark: the mark goes. At most `limit` of the oldest marks
   * are looked at per pass (through the index on deleting_at), so a pass reads a bounded number of rows.
   */
  async unmark(dryRun: boolean, limit: number): Promise<number> {
    const condition = `b.deleting_at IS NOT NULL AND (NOT ${UNREFERENCED}
      OR EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= b.deleting_at))`;
    const page = "SELECT digest FROM blobs WHERE deleting_at IS NOT NULL ORDER BY deleting_at LIMIT ?1";
    if (dryRun) {
      const row = await this.db.prepare(`SELECT COUNT(*) AS n FROM blobs b WHERE b.digest IN (${page}) AND ${condition}`).bind(limit).first<{ n: number }>();
      return row?.n ?? 0;
    }
    const result = await this.db.prepare(`UPDATE blobs AS b SET deleting_at = NULL WHERE b.digest IN (${page}) AND ${condition}`).bind(limit).run();
    return result.meta.changes;
  }

  /** Marked longer ago than `before`, still unreferenced, and not linked since the mark: deletable. */
  async deletable(before: number, limit: number): Promise<GarbageBlob[]> {
    const { results } = await this.db
      .prepare(
        `SELECT digest, size, object_key FROM blobs b
         WHERE b.deleting_at IS NOT NULL AND b.deleting_at < ?1 AND ${UNREFERENCED}
           AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= b.deleting_at)
         ORDER BY deleting_at LIMIT ?2`,
      )
      .bind(before, limit)
      .all<Row>();
    return results.map(toGarbage);
  }

  /** Deletes a deletable blob's links and row in one transaction; returns it when it was deleted. */
  async delete(digest: string, before: number): Promise<GarbageBlob | null> {
    return (await this.deleteMany([digest], before))[0] ?? null;
  }

  /**
   * Deletes deletable blobs' links and rows, each re-checked in its own statements, all in one batch (one
   * subrequest); returns those that were deleted.
   */
  async deleteMany(digests: string[], before: number): Promise<GarbageBlob[]> {
    if (digests.length === 0) return [];
    const still = `b.deleting_at IS NOT NULL AND b.deleting_at < ?2 AND ${UNREFERENCED}`;
    const statements = digests.flatMap((digest) => [
      this.db
        .prepare(
          `DELETE FROM repository_blobs WHERE digest = ?1 AND EXISTS (SELECT 1 FROM blobs b WHERE b.digest = ?1 AND ${still}
             AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= b.deleting_at))
           RETURNING repository`,
        )
        .bind(digest, before),
      // The quota's count loses what the next statement deletes (the same condition, in the same transaction).
      this.db
        .prepare(
          `UPDATE storage_usage SET bytes = bytes - x.size, blobs = blobs - 1
           FROM (SELECT b.size FROM blobs AS b WHERE b.digest = ?1 AND ${still}
                   AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest)) AS x
           WHERE id = 1`,
        )
        .bind(digest, before),
      this.db
        .prepare(
          `DELETE FROM blobs AS b WHERE b.digest = ?1 AND ${still}
             AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest)
           RETURNING digest, size, object_key`,
        )
        .bind(digest, before),
    ]);
    const results = await this.db.batch<Row & { repository: string }>(statements);
    const deleted: GarbageBlob[] = [];
    for (let at = 0; at < results.length; at += 3) {
      const row = results[at + 2]?.results[0];
      if (row) deleted.push({ ...toGarbage(row), repositories: (results[at]?.results ?? []).map((link) => link.repository) });
    }
    return deleted;
  }

  /**
   * Unmarked blobs older than `before`, unreferenced, and not linked since `before`: to be marked. One page of the
   * blobs after `after` in digest order, looked at `limit` rows at most, so a pass reads the same number of rows
   * whatever the registry holds; `next` is where the following pass goes on (null: the walk wrapped around).
   */
  async markable(before: number, limit: number, after = ""): Promise<{ blobs: GarbageBlob[]; next: string | null }> {
    const { results } = await this.db
      .prepare(
        `SELECT p.digest, p.size, p.object_key, (p.deleting_at IS NULL AND p.created_at < ?1 AND ${UNREFERENCED.replaceAll("b.digest", "p.digest")}
           AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = p.digest AND l.created_at >= ?1)) AS garbage
         FROM (SELECT digest, size, object_key, deleting_at, created_at FROM blobs WHERE digest > ?3 ORDER BY digest LIMIT ?2) p`,
      )
      .bind(before, limit, after)
      .all<Row & { garbage: number }>();
    const next = results.length === limit ? results.at(-1)!.digest : null;
    return { blobs: results.filter((row) => row.garbage === 1).map(toGarbage), next };
  }

  async mark(digests: string[], before: number, at: number): Promise<number> {
    if (digests.length === 0) return 0;
    const result = await this.db
      .prepare(
        `UPDATE blobs AS b SET deleting_at = ?3
         WHERE b.digest IN (SELECT value FROM json_each(?1)) AND b.deleting_at IS NULL AND ${UNREFERENCED}
           AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= ?2)`,
      )
      .bind(JSON.stringify(digests), before, at)
      .run();
    return result.meta.changes;
  }

  /** Of these R2 keys, those a blob row or a manifest row (a body too large for D1) points to. */
  async referencedKeys(keys: string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const { results } = await this.db
      .prepare(
        `SELECT object_key AS key FROM blobs WHERE object_key IN (SELECT value FROM json_each(?1))
         UNION ALL SELECT body_key FROM manifests WHERE body_key IN (SELECT value FROM json_each(?1))`,
      )
      .bind(JSON.stringify(keys))
      .all<{ key: string }>();
    return new Set(results.map((row) => row.key));
  }

  async cursor(name: string): Promise<string | undefined> {
    const row = await this.db.prepare("SELECT value FROM gc_state WHERE name = ?").bind(name).first<{ value: string }>();
    return row?.value;
  }

  async setCursor(name: string, value: string | undefined): Promise<void> {
    if (value === undefined) await this.db.prepare("DELETE FROM gc_state WHERE name = ?").bind(name).run();
    else {
      await this.db
        .prepare("INSERT INTO gc_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        .bind(name, value)
        .run();
    }
  }
}
