// SQL for pull statistics: counts added by each isolate's flush (src/services/pulls.ts), read by the tag API.
import type { Database } from "./database";

/** Pulls of one manifest (name: its digest) or tag (name: the tag) counted since the last flush. */
export interface PullCount {
  repository: string;
  name: string;
  pulls: number;
  lastPulledAt: number;
}

export class PullRecords {
  constructor(private readonly db: Database) {}

  /** Adds the counts in one batch, to the manifests' and tags' statistics. */
  async add(manifests: PullCount[], tags: PullCount[]): Promise<void> {
    const upsert = (table: "manifest_pulls" | "tag_pulls", column: "digest" | "tag") =>
      `INSERT INTO ${table} (repository, ${column}, pulls, last_pulled_at) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (repository, ${column}) DO UPDATE SET pulls = pulls + excluded.pulls,
         last_pulled_at = MAX(last_pulled_at, excluded.last_pulled_at)`;
    const statements = [
      ...manifests.map((count) => this.db.prepare(upsert("manifest_pulls", "digest")).bind(count.repository, count.name, count.pulls, count.lastPulledAt)),
      ...tags.map((count) => this.db.prepare(upsert("tag_pulls", "tag")).bind(count.repository, count.name, count.pulls, count.lastPulledAt)),
    ];
    if (statements.length > 0) await this.db.batch(statements);
  }

  /** The statistics of these tags and manifests of a repository (a page of the tag API). */
  async of(repository: string, tags: string[], digests: string[]): Promise<{ tags: Map<string, PullStats>; manifests: Map<string, PullStats> }> {
    if (tags.length === 0 && digests.length === 0) return { tags: new Map(), manifests: new Map() };
    const select = (table: "tag_pulls" | "manifest_pulls", column: "tag" | "digest") =>
      this.db
        .prepare(`SELECT ${column} AS name, pulls, last_pulled_at FROM ${table} WHERE repository = ?1 AND ${column} IN (SELECT value FROM json_each(?2))`)
        .bind(repository, JSON.stringify(column === "tag" ? tags : [...new Set(digests)]));
    const [byTag, byManifest] = await this.db.batch<{ name: string; pulls: number; last_pulled_at: number }>([select("tag_pulls", "tag"), select("manifest_pulls", "digest")]);
    const toMap = (rows: { name: string; pulls: number; last_pulled_at: number }[]) => new Map(rows.map((row) => [row.name, { pulls: row.pulls, lastPulledAt: row.last_pulled_at }]));
    return { tags: toMap(byTag?.results ?? []), manifests: toMap(byManifest?.results ?? []) };
  }
}

export interface PullStats {
  pulls: number;
  lastPulledAt: number;
}
