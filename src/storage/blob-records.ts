// SQL for blobs and their links to repositories.
import { RegistryError } from "../errors";
import type { Actor } from "../audit/events";
import { AuditRecords } from "./audit-records";
import type { Database } from "./database";
import { SearchRecords } from "./search-records";

export interface BlobRecord {
  digest: string;
  size: number;
  objectKey: string;
}

interface BlobRow {
  digest: string;
  size: number;
  object_key: string;
}

const toRecord = (row: BlobRow): BlobRecord => ({ digest: row.digest, size: row.size, objectKey: row.object_key });

/**
 * Points where a test may run another operation (a collector's phase) between a read and the write that depends on
 * it, to check the write's own condition rather than luck. Empty in production.
 */
export const interleavings: { beforeLink?: (blob: BlobRecord) => Promise<void>; beforeRecord?: (blob: BlobRecord) => Promise<void> } = {};

export class BlobRecords {
  constructor(private readonly db: Database) {}

  /** The blob, only if it is linked into this repository. */
  async find(repository: string, digest: string): Promise<BlobRecord | null> {
    const row = await this.db
      .prepare(
        `SELECT b.digest, b.size, b.object_key FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository = ? AND rb.digest = ?`,
      )
      .bind(repository, digest)
      .first<BlobRow>();
    return row ? toRecord(row) : null;
  }

  /**
   * The blob in any repository: for deduplicating bytes only, never for serving them. Blobs marked for deletion
   * are not offered (new bytes are stored instead), so a blob is never picked up just before its bytes go.
   */
  async findStored(digest: string): Promise<BlobRecord | null> {
    const row = await this.db
      .prepare("SELECT digest, size, object_key FROM blobs WHERE digest = ? AND deleting_at IS NULL")
      .bind(digest)
      .first<BlobRow>();
    return row ? toRecord(row) : null;
  }

  /**
   * Records bytes just stored at a fresh objectKey as the blob, unless another upload recorded the same digest first,
   * and links it into the repository. Returns the record that won: its objectKey may differ from the one given. The
   * winner is live: its row exists in this transaction and the link made here keeps the collector off it. Only for
   * fresh bytes: a row read earlier is linked with link(), which checks it is still there.
   */
  async record(repository: string, blob: BlobRecord, quota?: number): Promise<BlobRecord> {
    await interleavings.beforeRecord?.(blob);
    const now = Date.now();
    const [, , , , , winner] = await this.db.batch<BlobRow>([
      // New bytes fit the quota (STORAGE_QUOTA_BYTES) or are not recorded: checked here, in the same transaction.
      this.db
        .prepare(
          `INSERT OR IGNORE INTO blobs (digest, size, object_key, created_at) SELECT ?1, ?2, ?3, ?4
           WHERE ?5 IS NULL OR (SELECT bytes FROM storage_usage WHERE id = 1) + ?2 <= ?5`,
        )
        .bind(blob.digest, blob.size, blob.objectKey, now, quota ?? null),
      // Counted only when the insert just before stored the row (changes() is that statement's count): a retried
      // record of the same bytes, whose row is already there, adds nothing.
      this.db.prepare("UPDATE storage_usage SET bytes = bytes + ?1, blobs = blobs + 1 WHERE id = 1 AND changes() = 1").bind(blob.size),
      // The repository and the link exist only if the blob does (a push the quota refused leaves no empty repository).
      this.db
        .prepare("INSERT OR IGNORE INTO repositories (name, created_at) SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = ?3)")
        .bind(repository, now, blob.digest),
      // A link made now keeps the blob: it clears a garbage collector's mark (re-pushes refresh the link's time).
      this.db
        .prepare(
          `INSERT INTO repository_blobs (repository, digest, created_at) SELECT ?1, ?2, ?3
           WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = ?2)
           ON CONFLICT (repository, digest) DO UPDATE SET created_at = excluded.created_at`,
        )
        .bind(repository, blob.digest, now),
      this.db.prepare("UPDATE blobs SET deleting_at = NULL WHERE digest = ? AND deleting_at IS NOT NULL").bind(blob.digest),
      this.db.prepare("SELECT digest, size, object_key FROM blobs WHERE digest = ?").bind(blob.digest),
      new SearchRecords(this.db).indexName(repository),
    ]);
    const row = winner?.results[0];
    if (!row) throw quotaExceeded(quota ?? 0, blob.size, await storageUsage(this.db));
    return toRecord(row);
  }

  /**
   * Links a blob row read earlier (a mount, or bytes found by digest) into the repository, on condition that the row
   * still exists with the same bytes: the check and the link are one transaction, so a collector that deleted the
   * row (and then its bytes) in between makes this return null, and the caller stores bytes of its own. A link made
   * here clears a collector's mark, as any new link does.
   */
  async link(repository: string, blob: BlobRecord): Promise<BlobRecord | null> {
    await interleavings.beforeLink?.(blob);
    const now = Date.now();
    const same = "SELECT 1 FROM blobs WHERE digest = ?2 AND object_key = ?3";
    const [, , , linked] = await this.db.batch<BlobRow>([
      this.db
        .prepare(`INSERT OR IGNORE INTO repositories (name, created_at) SELECT ?1, ?4 WHERE EXISTS (${same})`)
        .bind(repository, blob.digest, blob.objectKey, now),
      this.db
        .prepare(
          `INSERT INTO repository_blobs (repository, digest, created_at) SELECT ?1, ?2, ?4 WHERE EXISTS (${same})
           ON CONFLICT (repository, digest) DO UPDATE SET created_at = excluded.created_at`,
        )
        .bind(repository, blob.digest, blob.objectKey, now),
      this.db.prepare("UPDATE blobs SET deleting_at = NULL WHERE digest = ? AND object_key = ? AND deleting_at IS NOT NULL").bind(blob.digest, blob.objectKey),
      this.db.prepare("SELECT digest, size, object_key FROM blobs WHERE digest = ? AND object_key = ?").bind(blob.digest, blob.objectKey),
      new SearchRecords(this.db).indexName(repository),
    ]);
    const row = linked?.results[0];
    return row ? toRecord(row) : null;
  }

  /** Repositories the blob is linked into, at most `limit`, for an automatic mount to choose from. */
  async holders(digest: string, limit: number): Promise<string[]> {
    const { results } = await this.db
      .prepare("SELECT repository FROM repository_blobs WHERE digest = ? ORDER BY repository LIMIT ?")
      .bind(digest, limit)
      .all<{ repository: string }>();
    return results.map((row) => row.repository);
  }

  /** Links a blob already linked into `from` into `repository` (a cross-repository mount); false if it is not there. */
  async mount(repository: string, digest: string, from: string): Promise<boolean> {
    const blob = await this.find(from, digest);
    if (!blob) return false;
    return (await this.link(repository, blob)) !== null;
  }

  /**
   * Takes the blob out of the repository, unless a manifest there references it (that image would break): then it
   * names the manifest. The check and the delete are one transaction.
   */
  async unlink(repository: string, digest: string, by: Actor): Promise<{ unlinked: boolean; referencedBy: string | null }> {
    const referencing = "SELECT manifest FROM manifest_references WHERE repository = ?1 AND child = ?2 AND kind = 'blob'";
    const [parent, deleted] = await this.db.batch<{ manifest: string }>([
      this.db.prepare(`${referencing} LIMIT 1`).bind(repository, digest),
      this.db
        .prepare(`DELETE FROM repository_blobs WHERE repository = ?1 AND digest = ?2 AND NOT EXISTS (${referencing})`)
        .bind(repository, digest),
      // Right after the delete: recorded when it deleted the link (changes() is its count).
      new AuditRecords(this.db).insert(by, { action: "blob.delete", repository, target: digest }, { where: "changes() = 1" }),
    ]);
    return { unlinked: (deleted?.meta.changes ?? 0) > 0, referencedBy: parent?.results[0]?.manifest ?? null };
  }
}

/** Bytes and count of every stored blob (each counted once, however many repositories link it): one row. */
export async function storageUsage(db: Database): Promise<{ bytes: number; blobs: number }> {
  const row = await db.prepare("SELECT bytes, blobs FROM storage_usage WHERE id = 1").first<{ bytes: number; blobs: number }>();
  return { bytes: row?.bytes ?? 0, blobs: row?.blobs ?? 0 };
}

export function quotaExceeded(quota: number, needed: number, usage: { bytes: number }): RegistryError {
  return new RegistryError("DENIED", { quota, used: usage.bytes, needed }, {
    message: `storage quota exceeded: this registry may store ${quota} bytes (STORAGE_QUOTA_BYTES) and holds ${usage.bytes}`,
  });
}
