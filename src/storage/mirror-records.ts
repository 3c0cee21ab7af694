import { AuditRecords, type AuditNote } from "./audit-records";
import type { Database } from "./database";
import { SearchRecords } from "./search-records";

// SQL for the mirror's own bookkeeping: when a mirrored tag was last revalidated upstream.

export class MirrorRecords {
  constructor(private readonly db: D1Database) {}

  async checkedAt(repository: string, tag: string): Promise<number | null> {
    const row = await this.db
      .prepare("SELECT checked_at FROM mirror_checks WHERE repository = ? AND tag = ?")
      .bind(repository, tag)
      .first<{ checked_at: number }>();
    return row?.checked_at ?? null;
  }

  async markChecked(repository: string, tag: string, at = Date.now()): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO mirror_checks (repository, tag, checked_at) VALUES (?, ?, ?)
         ON CONFLICT (repository, tag) DO UPDATE SET checked_at = excluded.checked_at`,
      )
      .bind(repository, tag, at)
      .run();
  }
}

/** A mirrored manifest as eviction sees it. */
export interface MirrorEntry {
  repository: string;
  digest: string;
  bytes: number;
  lastPulledAt: number;
}

// Whether the eviction's first statement took the entry away (the manifest goes with it, and only then).
const EVICTED = "NOT EXISTS (SELECT 1 FROM mirror_contents WHERE repository = ?1 AND digest = ?2)";

/** SQL for what mirrors hold: written with each mirrored manifest, touched by pulls, read and trimmed by eviction. */
export class MirrorContentRecords {
  constructor(private readonly db: Database) {}

  /**
   * The statements that count a manifest the mirror stores, to follow its insert in the batch that stores it: only if
   * that insert added the row (changes() is its count). It counts its own bytes and those of the blobs it references
   * that the repository holds already; blobs linked later are added as they are (addBlob).
   */
  recordStatements(prefix: string, repository: string, digest: string, size: number, blobs: string, now: number): D1PreparedStatement[] {
    return [
      this.db
        .prepare(
          `INSERT OR IGNORE INTO mirror_contents (prefix, repository, digest, bytes, last_pulled_at)
           SELECT ?1, ?2, ?3, ?4 + COALESCE((SELECT SUM(b.size) FROM blobs b
               WHERE b.digest IN (SELECT value FROM json_each(?6))
                 AND EXISTS (SELECT 1 FROM repository_blobs l WHERE l.repository = ?2 AND l.digest = b.digest)), 0), ?5
           WHERE changes() = 1`,
        )
        .bind(prefix, repository, digest, size, now, blobs),
      // Counted only when the insert just before added the row.
      this.db
        .prepare(
          `INSERT INTO mirror_usage (prefix, bytes, manifests)
           SELECT ?1, (SELECT bytes FROM mirror_contents WHERE repository = ?2 AND digest = ?3), 1 WHERE changes() = 1
           ON CONFLICT (prefix) DO UPDATE SET bytes = bytes + excluded.bytes, manifests = manifests + 1`,
        )
        .bind(prefix, repository, digest),
    ];
  }

  /**
   * A blob the mirror just linked into a repository (its size as stored, checked against its digest): counted for
   * every mirrored manifest there that references it. A link made twice at once may count twice: more, never less.
   */
  async addBlob(prefix: string, repository: string, digest: string, size: number): Promise<void> {
    await this.db.batch([
      this.db
        .prepare(
          `UPDATE mirror_contents SET bytes = bytes + ?3 WHERE repository = ?1
             AND digest IN (SELECT manifest FROM manifest_references WHERE repository = ?1 AND child = ?2 AND kind = 'blob')`,
        )
        .bind(repository, digest, size),
      this.db.prepare("UPDATE mirror_usage SET bytes = bytes + ?2 * changes() WHERE prefix = ?1").bind(prefix, size),
    ]);
  }

  /** Moves the last pull of these manifests forward (never back): pre-warming keeps what it warms. */
  async touch(manifests: { repository: string; digest: string }[], at = Date.now()): Promise<void> {
    if (manifests.length === 0) return;
    await this.db.batch(
      manifests.map(({ repository, digest }) =>
        this.db.prepare("UPDATE mirror_contents SET last_pulled_at = ?3 WHERE repository = ?1 AND digest = ?2 AND last_pulled_at < ?3").bind(repository, digest, at),
      ),
    );
  }

  async usage(prefix: string): Promise<{ bytes: number; manifests: number }> {
    const row = await this.db.prepare("SELECT bytes, manifests FROM mirror_usage WHERE prefix = ?").bind(prefix).first<{ bytes: number; manifests: number }>();
    return row ?? { bytes: 0, manifests: 0 };
  }

  /** The mirror's least recently pulled manifests, oldest first, at most `limit` (an index seek). */
  async leastRecentlyPulled(prefix: string, limit: number): Promise<MirrorEntry[]> {
    const { results } = await this.db
      .prepare("SELECT repository, digest, bytes, last_pulled_at FROM mirror_contents WHERE prefix = ? ORDER BY last_pulled_at, repository, digest LIMIT ?")
      .bind(prefix, limit)
      .all<{ repository: string; digest: string; bytes: number; last_pulled_at: number }>();
    return results.map((row) => ({ repository: row.repository, digest: row.digest, bytes: row.bytes, lastPulledAt: row.last_pulled_at }));
  }

  /**
   * Evicts the entries in one batch: each only if it was not pulled since it was chosen (its row still has that time),
   * and then its manifest, references and tags go with it. What it referenced is left to the collector's mark and
   * sweep, which keeps any blob another manifest (a pushed image, another mirrored one) still references. An index
   * listing an evicted manifest stays: a mirror fetches missing children again when they are pulled. Each evicted
   * manifest gets its audit row in the batch.
   */
  async evict(prefix: string, entries: MirrorEntry[], note: AuditNote): Promise<MirrorEntry[]> {
    if (entries.length === 0) return [];
    const search = new SearchRecords(this.db);
    const perEntry = entries.map(({ repository, digest, lastPulledAt, bytes }) => [
      this.db.prepare("DELETE FROM mirror_contents WHERE repository = ?1 AND digest = ?2 AND last_pulled_at = ?3").bind(repository, digest, lastPulledAt),
      this.db.prepare("UPDATE mirror_usage SET bytes = bytes - ?1, manifests = manifests - 1 WHERE prefix = ?2 AND changes() = 1").bind(bytes, prefix),
      ...[
        `DELETE FROM mirror_checks WHERE repository = ?1 AND tag IN (SELECT name FROM tags WHERE repository = ?1 AND digest = ?2) AND ${EVICTED}`,
        `DELETE FROM tags WHERE repository = ?1 AND digest = ?2 AND ${EVICTED}`,
        `DELETE FROM manifest_references WHERE repository = ?1 AND manifest = ?2 AND ${EVICTED}`,
        `DELETE FROM manifests WHERE repository = ?1 AND digest = ?2 AND ${EVICTED}`,
      ].map((sql) => this.db.prepare(sql).bind(repository, digest)),
      // Right after the manifest's delete: recorded when it deleted it (changes() is its count).
      new AuditRecords(this.db).insert(note.by, { action: "manifest.delete", repository, target: digest, detail: note.detail }, { where: "changes() = 1" }),
      search.forget(repository, digest),
    ]);
    const statements = perEntry.flat();
    const per = perEntry[0]!.length;
    const repositories = [...new Set(entries.map((entry) => entry.repository))];
    const results = await this.db.batch([...statements, ...repositories.flatMap((repository) => search.refresh(repository))]);
    return entries.filter((_, index) => (results[index * per]?.meta.changes ?? 0) > 0);
  }
}

/** How the last refresh of a pre-warmed tag went. */
export interface PrewarmState {
  repository: string;
  tag: string;
  attemptedAt: number;
  status: "warm" | "failed";
  /** The manifest the tag pointed at, when it was resolved. */
  digest: string | null;
  /** Bytes fetched from the upstream by that refresh (0: everything was stored already). */
  fetchedBytes: number;
  /** Why it failed. */
  detail: string | null;
  /** The last time it was refreshed successfully. */
  warmedAt: number | null;
}

interface PrewarmRow {
  repository: string;
  tag: string;
  attempted_at: number;
  status: "warm" | "failed";
  digest: string | null;
  fetched_bytes: number;
  detail: string | null;
  warmed_at: number | null;
}

/** SQL for pre-warming's progress: a row per tag kept warm, per mirror. */
export class PrewarmRecords {
  constructor(private readonly db: Database) {}

  /** Forgets the mirror's rows for tags it no longer keeps warm. */
  async keepOnly(prefix: string, targets: { repository: string; tag: string }[]): Promise<void> {
    await this.db
      .prepare(
        `DELETE FROM mirror_prewarm WHERE prefix = ?1 AND NOT EXISTS (SELECT 1 FROM json_each(?2) k
           WHERE k.value ->> '$.repository' = mirror_prewarm.repository AND k.value ->> '$.tag' = mirror_prewarm.tag)`,
      )
      .bind(prefix, JSON.stringify(targets))
      .run();
  }

  /** The mirror's rows (as many as it keeps warm: bounded by its configuration, kept so by keepOnly). */
  async list(prefix: string): Promise<PrewarmState[]> {
    const { results } = await this.db
      .prepare("SELECT repository, tag, attempted_at, status, digest, fetched_bytes, detail, warmed_at FROM mirror_prewarm WHERE prefix = ? ORDER BY repository, tag")
      .bind(prefix)
      .all<PrewarmRow>();
    return results.map((row) => ({
      repository: row.repository,
      tag: row.tag,
      attemptedAt: row.attempted_at,
      status: row.status,
      digest: row.digest,
      fetchedBytes: row.fetched_bytes,
      detail: row.detail,
      warmedAt: row.warmed_at,
    }));
  }

  /** Records a refresh; a failure keeps the time of the last success. */
  async save(prefix: string, state: Omit<PrewarmState, "warmedAt">): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO mirror_prewarm (prefix, repository, tag, attempted_at, status, digest, fetched_bytes, detail, warmed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?5 = 'warm' THEN ?4 END)
         ON CONFLICT (prefix, repository, tag) DO UPDATE SET attempted_at = excluded.attempted_at, status = excluded.status,
           digest = COALESCE(excluded.digest, digest), fetched_bytes = excluded.fetched_bytes, detail = excluded.detail,
           warmed_at = COALESCE(excluded.warmed_at, warmed_at)`,
      )
      .bind(prefix, state.repository, state.tag, state.attemptedAt, state.status, state.digest, state.fetchedBytes, state.detail)
      .run();
  }
}
