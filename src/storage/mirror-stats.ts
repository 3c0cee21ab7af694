// SQL for the mirrors' counters: deltas added by each isolate's flush, read by GET /admin/mirrors.

/** What a mirror counted: requests by how they were served, failed upstream exchanges, and bytes each way. */
export interface MirrorCounts {
  hits: number;
  misses: number;
  revalidations: number;
  staleServes: number;
  upstreamErrors: number;
  bytesFromUpstream: number;
  /** Bytes served from the local copy: what the upstream did not have to send. */
  bytesSaved: number;
}

export interface MirrorCountsRow extends MirrorCounts {
  prefix: string;
  updatedAt: number;
}

interface Row {
  prefix: string;
  hits: number;
  misses: number;
  revalidations: number;
  stale_serves: number;
  upstream_errors: number;
  bytes_from_upstream: number;
  bytes_saved: number;
  updated_at: number;
}

export class MirrorStatsRecords {
  constructor(private readonly db: D1Database) {}

  /** Adds deltas: one statement per mirror, all in one batch. */
  async add(deltas: [prefix: string, counts: MirrorCounts][], at = Date.now()): Promise<void> {
    if (deltas.length === 0) return;
    await this.db.batch(
      deltas.map(([prefix, c]) =>
        this.db
          .prepare(
            `INSERT INTO mirror_stats (prefix, hits, misses, revalidations, stale_serves, upstream_errors, bytes_from_upstream, bytes_saved, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (prefix) DO UPDATE SET
               hits = hits + excluded.hits, misses = misses + excluded.misses, revalidations = revalidations + excluded.revalidations,
               stale_serves = stale_serves + excluded.stale_serves, upstream_errors = upstream_errors + excluded.upstream_errors,
               bytes_from_upstream = bytes_from_upstream + excluded.bytes_from_upstream, bytes_saved = bytes_saved + excluded.bytes_saved,
               updated_at = excluded.updated_at`,
          )
          .bind(prefix, c.hits, c.misses, c.revalidations, c.staleServes, c.upstreamErrors, c.bytesFromUpstream, c.bytesSaved, at),
      ),
    );
  }

  async list(): Promise<MirrorCountsRow[]> {
    const { results } = await this.db.prepare("SELECT * FROM mirror_stats ORDER BY prefix").all<Row>();
    return results.map((row) => ({
      prefix: row.prefix,
      hits: row.hits,
      misses: row.misses,
      revalidations: row.revalidations,
      staleServes: row.stale_serves,
      upstreamErrors: row.upstream_errors,
      bytesFromUpstream: row.bytes_from_upstream,
      bytesSaved: row.bytes_saved,
      updatedAt: row.updated_at,
    }));
  }
}
