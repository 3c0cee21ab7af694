import { purgeEdgeCache } from "../cache/edge";
import { GcRecords, type GarbageBlob } from "../storage/gc-records";
import { applyRetention, type RetentionReport, type RetentionRule } from "./retention";

export interface GcOptions {
  /** Report what would go without changing anything. */
  dryRun: boolean;
  /** Nothing younger than this is touched, and a mark waits this long before its blob goes (pushes in flight). */
  graceMs: number;
  /** At most this many blobs per step: one pass stays within a Worker's CPU and subrequest limits. */
  batch: number;
  now?: number;
  /** Retention rules (RETENTION) and the repositories whose tags are immutable (IMMUTABLE_TAGS). */
  retention?: { rules: RetentionRule[]; immutable: string[] };
}

export interface GcReport {
  dryRun: boolean;
  retention: RetentionReport;
  unmarked: number;
  marked: GarbageBlob[];
  deleted: GarbageBlob[];
  orphans: { key: string; size: number }[];
  bytesFreed: number;
  /** True when a step hit its batch size: the next pass continues. */
  more: boolean;
}

const ORPHAN_PREFIXES = ["blobs/", "uploads/", "manifests/"];

/**
 * Mark and sweep, in two passes a grace window apart. A blob that no manifest references and nothing linked
 * recently is marked; a later pass deletes it (row, links, then bytes) only if it is still unreferenced and was
 * not linked since the mark. Pushing a manifest that references a marked blob, re-linking it (upload, mount) or
 * deduplicating onto it clears the mark; a blob already deleted cannot be referenced (the manifest insert checks the
 * row in the same transaction) and its key is never reused. Objects in R2 that no row names (an upload that died
 * between storing bytes and recording them, the body of a deleted manifest too large for D1) are deleted once older
 * than the grace window.
 */
export class GarbageCollector {
  private readonly records: GcRecords;

  constructor(
    private readonly db: D1Database,
    private readonly bucket: R2Bucket,
  ) {
    this.records = new GcRecords(db);
  }

  async run(options: GcOptions): Promise<GcReport> {
    const now = options.now ?? Date.now();
    const before = now - options.graceMs;
    // Retention first: what it deletes stops referencing blobs, which the steps below then collect.
    const retention = options.retention?.rules.length
      ? await applyRetention(this.db, options.retention.rules, options.retention.immutable, { dryRun: options.dryRun, limit: options.batch, now })
      : { tags: [], manifests: [] };
    const report: GcReport = { dryRun: options.dryRun, retention, unmarked: 0, marked: [], deleted: [], orphans: [], bytesFreed: 0, more: false };

    report.unmarked = await this.records.unmark(options.dryRun);

    const deletable = await this.records.deletable(before, options.batch);
    report.more ||= deletable.length === options.batch;
    if (options.dryRun) report.deleted = deletable;
    else {
      for (const blob of deletable) {
        const deleted = await this.records.delete(blob.digest, before);
        if (deleted) report.deleted.push(deleted);
      }
      // Rows first, then bytes: a crash in between leaves an orphan object, collected later, never a dangling row.
      if (report.deleted.length > 0) await this.bucket.delete(report.deleted.map((blob) => blob.objectKey));
      for (const blob of report.deleted) {
        for (const repository of blob.repositories ?? []) await purgeEdgeCache(repository, "blobs", blob.digest);
      }
    }

    const markable = await this.records.markable(before, options.batch);
    report.more ||= markable.length === options.batch;
    if (!options.dryRun) await this.records.mark(markable.map((blob) => blob.digest), before, now);
    report.marked = markable;

    for (const prefix of ORPHAN_PREFIXES) report.orphans.push(...(await this.orphans(prefix, before, options)));
    if (!options.dryRun && report.orphans.length > 0) await this.bucket.delete(report.orphans.map((orphan) => orphan.key));

    report.bytesFreed = [...report.deleted, ...report.orphans].reduce((sum, item) => sum + item.size, 0);
    return report;
  }

  /** One page of R2 objects under the prefix, continuing where the last pass stopped: those no row names. */
  private async orphans(prefix: string, before: number, options: GcOptions): Promise<{ key: string; size: number }[]> {
    const cursorName = `orphans:${prefix}`;
    const page = await this.bucket.list({ prefix, cursor: await this.records.cursor(cursorName), limit: Math.min(options.batch, 1000) });
    const candidates = page.objects.filter((object) => object.uploaded.getTime() < before);
    const referenced = await this.records.referencedKeys(candidates.map((object) => object.key));
    if (!options.dryRun) await this.records.setCursor(cursorName, page.truncated ? page.cursor : undefined);
    return candidates.filter((object) => !referenced.has(object.key)).map((object) => ({ key: object.key, size: object.size }));
  }
}
