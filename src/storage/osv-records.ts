// SQL for the OSV database, its feeds' progress and the SBOM scans (migrations/0015_osv_database.sql). Writes of
// records go in batches whose rows travel as one JSON parameter per statement, so an import of a few hundred records
// is a handful of statements, not one per row.
import type { Advisory } from "../osv/record";
import { readAtMost } from "../streams";
import type { Database } from "./database";
import { ManifestRecords } from "./manifest-records";
import { linkedBlobBytes } from "./referrer-bytes";

/** The JSON a single statement binds stays under this (D1 takes strings up to 2 MB). */
const MAX_PARAMETER_BYTES = 900_000;
/** Packages looked up per statement. */
const LOOKUP_CHUNK = 50;

export interface AffectedMatchRow {
  advisory: string;
  summary: string;
  advisorySeverity: string;
  ecosystem: string;
  name: string;
  ranges: string;
  versions: string;
  severity: string | null;
}

export interface FeedState {
  url: string;
  etag: string | null;
  pendingEtag: string | null;
  cursor: number;
  imported: number;
  lastError: string | null;
  checkedAt: number;
  completedAt: number | null;
}

export interface ScanRow {
  repository: string;
  digest: string;
  generation: number;
}

export class OsvRecords {
  constructor(private readonly db: Database) {}

  /** The stored `modified` of each of these records that is stored. */
  async modifiedOf(ids: string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const { results } = await this.db
      .prepare("SELECT a.id, a.modified FROM json_each(?1) d JOIN osv_advisories a ON a.id = d.value")
      .bind(JSON.stringify(ids))
      .all<{ id: string; modified: string }>();
    return new Map(results.map((row) => [row.id, row.modified]));
  }

  /**
   * Writes the records (each replacing any stored one of its id) and bumps the database's generation, in one batch:
   * a scan sees every record of the batch or none.
   */
  async write(advisories: Advisory[], now: number): Promise<void> {
    if (advisories.length === 0) return;
    const statements: D1PreparedStatement[] = [];
    const ids = JSON.stringify(advisories.map((advisory) => advisory.id));
    statements.push(this.db.prepare("DELETE FROM osv_affected WHERE advisory IN (SELECT value FROM json_each(?1))").bind(ids));
    const heads = advisories.map((a) => [a.id, a.modified, a.withdrawn, a.summary, a.severity]);
    for (const chunk of bySize(heads)) {
      statements.push(
        this.db
          .prepare(
            `INSERT INTO osv_advisories (id, modified, withdrawn, summary, severity, imported_at)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ?2 FROM json_each(?1) WHERE true
             ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, withdrawn = excluded.withdrawn,
               summary = excluded.summary, severity = excluded.severity, imported_at = excluded.imported_at`,
          )
          .bind(chunk, now),
      );
    }
    const rows = advisories.flatMap((a) =>
      a.affected.map((row, seq) => [a.id, seq, row.ecosystem, row.name, JSON.stringify(row.ranges), JSON.stringify(row.versions), row.severity]),
    );
    for (const chunk of bySize(rows)) {
      statements.push(
        this.db
          .prepare(
            `INSERT INTO osv_affected (advisory, seq, ecosystem, name, ranges, versions, severity)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 FROM json_each(?1)`,
          )
          .bind(chunk),
      );
    }
    statements.push(this.db.prepare("UPDATE osv_database SET generation = generation + 1, updated_at = ?1 WHERE id = 1").bind(now));
    await this.db.batch(statements);
  }

  async generation(): Promise<number> {
    return (await this.db.prepare("SELECT generation FROM osv_database WHERE id = 1").first<number>("generation")) ?? 0;
  }

  async counts(): Promise<{ advisories: number; packages: number; generation: number; updatedAt: number }> {
    const row = await this.db
      .prepare(
        `SELECT (SELECT count(*) FROM osv_advisories) AS advisories, (SELECT count(*) FROM osv_affected) AS packages,
           generation, updated_at FROM osv_database WHERE id = 1`,
      )
      .first<{ advisories: number; packages: number; generation: number; updated_at: number }>();
    return { advisories: row?.advisories ?? 0, packages: row?.packages ?? 0, generation: row?.generation ?? 0, updatedAt: row?.updated_at ?? 0 };
  }

  /** The affected entries of records not withdrawn for these (ecosystem, name) pairs: one index seek per pair. */
  async affectedFor(packages: [string, string][], each: (rows: AffectedMatchRow[]) => void): Promise<void> {
    for (let at = 0; at < packages.length; at += LOOKUP_CHUNK) {
      const { results } = await this.db
        .prepare(
          `SELECT f.advisory, a.summary, a.severity AS advisory_severity, f.ecosystem, f.name, f.ranges, f.versions, f.severity
           FROM json_each(?1) p
           JOIN osv_affected f ON f.ecosystem = p.value->>0 AND f.name = p.value->>1
           JOIN osv_advisories a ON a.id = f.advisory
           WHERE a.withdrawn IS NULL`,
        )
        .bind(JSON.stringify(packages.slice(at, at + LOOKUP_CHUNK)))
        .all<Omit<AffectedMatchRow, "advisorySeverity"> & { advisory_severity: string }>();
      // Matched chunk by chunk: a popular package's records are held only while its chunk is.
      each(results.map((row) => ({ ...row, advisorySeverity: row.advisory_severity })));
    }
  }

  async feed(url: string): Promise<FeedState | null> {
    const row = await this.db
      .prepare("SELECT url, etag, pending_etag, cursor, imported, last_error, checked_at, completed_at FROM osv_feeds WHERE url = ?1")
      .bind(url)
      .first<{ url: string; etag: string | null; pending_etag: string | null; cursor: number; imported: number; last_error: string | null; checked_at: number; completed_at: number | null }>();
    return row
      ? { url: row.url, etag: row.etag, pendingEtag: row.pending_etag, cursor: row.cursor, imported: row.imported, lastError: row.last_error, checkedAt: row.checked_at, completedAt: row.completed_at }
      : null;
  }

  async saveFeed(ecosystem: string, state: FeedState): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO osv_feeds (url, ecosystem, etag, pending_etag, cursor, imported, last_error, checked_at, completed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (url) DO UPDATE SET ecosystem = excluded.ecosystem, etag = excluded.etag, pending_etag = excluded.pending_etag,
           cursor = excluded.cursor, imported = excluded.imported, last_error = excluded.last_error,
           checked_at = excluded.checked_at, completed_at = excluded.completed_at`,
      )
      .bind(state.url, ecosystem, state.etag, state.pendingEtag, state.cursor, state.imported, state.lastError, state.checkedAt, state.completedAt)
      .run();
  }

  /** The SBOM referrers of a manifest (oldest first, at most `cap`). */
  async sbomReferrers(repository: string, digest: string, artifactTypes: readonly string[], cap: number): Promise<string[]> {
    const { results } = await this.db
      .prepare(
        `SELECT digest FROM manifests
         WHERE repository = ?1 AND subject = ?2 AND artifact_type IN (SELECT value FROM json_each(?3))
         ORDER BY created_at, digest LIMIT ?4`,
      )
      .bind(repository, digest, JSON.stringify(artifactTypes), cap)
      .all<{ digest: string }>();
    return results.map((row) => row.digest);
  }

  /** A manifest's media type and bytes (from D1, or R2 when large), or null when it is gone or larger than `limit`. */
  async manifestBytes(bucket: R2Bucket, repository: string, digest: string, limit: number): Promise<{ mediaType: string; bytes: Uint8Array } | null> {
    const record = await new ManifestRecords(this.db).find(repository, digest);
    if (!record || record.size > limit) return null;
    if (record.body !== null) return { mediaType: record.mediaType, bytes: new TextEncoder().encode(record.body) };
    const object = record.bodyKey ? await bucket.get(record.bodyKey) : null;
    const bytes = object ? await readAtMost(object.body, limit) : null;
    return bytes ? { mediaType: record.mediaType, bytes } : null;
  }

  /** A blob linked in the repository, whole, within `limit` bytes (see linkedBlobBytes). */
  async blobBytes(bucket: R2Bucket, repository: string, digest: string, limit: number): Promise<Uint8Array | "missing" | "too large"> {
    return linkedBlobBytes(this.db, bucket, repository, digest, limit);
  }

  /** Marks a manifest to be scanned (generation -1) unless a scan of it is recorded. */
  async enqueue(repository: string, digest: string, now: number): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO osv_scans (repository, digest, generation, sboms, packages, findings, scanned_at)
         VALUES (?1, ?2, -1, '[]', 0, 0, ?3) ON CONFLICT (repository, digest) DO UPDATE SET generation = -1`,
      )
      .bind(repository, digest, now)
      .run();
  }

  async saveScan(repository: string, digest: string, generation: number, sboms: string[], packages: number, findings: number, now: number): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO osv_scans (repository, digest, generation, sboms, packages, findings, scanned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (repository, digest) DO UPDATE SET generation = excluded.generation, sboms = excluded.sboms,
           packages = excluded.packages, findings = excluded.findings, scanned_at = excluded.scanned_at`,
      )
      .bind(repository, digest, generation, JSON.stringify(sboms), packages, findings, now)
      .run();
  }

  async dropScan(repository: string, digest: string): Promise<void> {
    await this.db.prepare("DELETE FROM osv_scans WHERE repository = ?1 AND digest = ?2").bind(repository, digest).run();
  }

  async scanState(repository: string, digest: string): Promise<{ generation: number; sboms: string[]; packages: number; findings: number; scannedAt: number } | null> {
    const row = await this.db
      .prepare("SELECT generation, sboms, packages, findings, scanned_at FROM osv_scans WHERE repository = ?1 AND digest = ?2")
      .bind(repository, digest)
      .first<{ generation: number; sboms: string; packages: number; findings: number; scanned_at: number }>();
    return row ? { generation: row.generation, sboms: JSON.parse(row.sboms) as string[], packages: row.packages, findings: row.findings, scannedAt: row.scanned_at } : null;
  }

  /** Scans older than `generation`, lowest first, on the (generation, repository, digest) index. */
  async stale(generation: number, limit: number): Promise<ScanRow[]> {
    const { results } = await this.db
      .prepare("SELECT repository, digest, generation FROM osv_scans WHERE generation < ?1 ORDER BY generation, repository, digest LIMIT ?2")
      .bind(generation, limit)
      .all<ScanRow>();
    return results;
  }

  /**
   * One step of the walk over every manifest (primary key order, from the saved position) that enqueues the subjects
   * of SBOM referrers: at most `limit` manifests read. Returns how many it enqueued; the walk is done once it ends.
   */
  async discover(artifactTypes: readonly string[], limit: number, now: number): Promise<{ done: boolean; enqueued: number }> {
    const state = await this.db
      .prepare("SELECT discovery_done, discovery_repository, discovery_digest FROM osv_database WHERE id = 1")
      .first<{ discovery_done: number; discovery_repository: string | null; discovery_digest: string | null }>();
    if (!state || state.discovery_done === 1) return { done: true, enqueued: 0 };
    const { results } = await this.db
      .prepare(
        `SELECT repository, digest, subject, artifact_type FROM manifests
         WHERE (repository, digest) > (?1, ?2) ORDER BY repository, digest LIMIT ?3`,
      )
      .bind(state.discovery_repository ?? "", state.discovery_digest ?? "", limit)
      .all<{ repository: string; digest: string; subject: string | null; artifact_type: string | null }>();
    const subjects = results.filter((row) => row.subject !== null && row.artifact_type !== null && artifactTypes.includes(row.artifact_type));
    const last = results.at(-1);
    const done = results.length < limit;
    const pairs = JSON.stringify(subjects.map((row) => [row.repository, row.subject]));
    await this.db.batch([
      this.db
        .prepare(
          `INSERT INTO osv_scans (repository, digest, generation, sboms, packages, findings, scanned_at)
           SELECT value->>0, value->>1, -1, '[]', 0, 0, ?2 FROM json_each(?1) WHERE true ON CONFLICT (repository, digest) DO NOTHING`,
        )
        .bind(pairs, now),
      this.db
        .prepare("UPDATE osv_database SET discovery_done = ?1, discovery_repository = ?2, discovery_digest = ?3 WHERE id = 1")
        .bind(done ? 1 : 0, last?.repository ?? state.discovery_repository, last?.digest ?? state.discovery_digest),
    ]);
    return { done, enqueued: subjects.length };
  }
}

/** JSON arrays of the rows, each under the parameter bound (a row larger than it goes alone). */
function bySize(rows: unknown[][]): string[] {
  const chunks: string[] = [];
  let current: string[] = [];
  let size = 2;
  for (const row of rows) {
    const text = JSON.stringify(row);
    if (current.length > 0 && size + text.length + 1 > MAX_PARAMETER_BYTES) {
      chunks.push(`[${current.join(",")}]`);
      current = [];
      size = 2;
    }
    current.push(text);
    size += text.length + 1;
  }
  if (current.length > 0) chunks.push(`[${current.join(",")}]`);
  return chunks;
}
