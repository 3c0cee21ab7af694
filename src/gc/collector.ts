import { GC } from "../audit/events";
import { AuditRecords } from "../storage/audit-records";
import { GcRecords, type GarbageBlob } from "../storage/gc-records";
import { MirrorContentRecords, type MirrorEntry } from "../storage/mirror-records";
import { Budget } from "./budget";
import { applyRetention, type RetentionReport, type RetentionRule } from "./retention";

/** GC_SUBREQUEST_BUDGET's default: a pass stays far below the platform's per-invocation limits. */
export const DEFAULT_SUBREQUESTS = 500;
// Blobs deleted per D1 batch (three statements each).
const DELETES_PER_BATCH = 25;
// Audit log rows go at most this many batches (of GC_BATCH_SIZE) per pass: 20 × 500 every 15 minutes is about a
// million a day, more than a busy registry writes.
const AUDIT_BATCHES_PER_PASS = 20;
// Pages of the mark walk per pass, and the subrequests it leaves for the orphan sweeps (5 each) and audit retention.
const MARK_PAGES_PER_PASS = 40;
const RESERVED_AFTER_MARKING = 3 * 5 + AUDIT_BATCHES_PER_PASS;

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
  /** Subrequests (D1 queries and batches, R2 calls) one pass may make (GC_SUBREQUEST_BUDGET). */
  subrequests?: number;
  /** Mirrors with a maxBytes: the least recently pulled of what they hold goes until they fit. */
  mirrors?: { prefix: string; maxBytes?: number }[];
  /** Audit log rows older than this many days are deleted (AUDIT_RETENTION_DAYS; 0 or none: kept). */
  auditRetentionDays?: number;
}

export interface EvictedImage extends MirrorEntry {
  prefix: string;
}

export interface GcReport {
  dryRun: boolean;
  retention: RetentionReport;
  /** Mirrored manifests evicted (or, in a dry run, that would be) to bring mirrors within their maxBytes. */
  evicted: EvictedImage[];
  unmarked: number;
  marked: GarbageBlob[];
  deleted: GarbageBlob[];
  orphans: { key: string; size: number }[];
  bytesFreed: number;
  /** Audit log rows past AUDIT_RETENTION_DAYS deleted (in a dry run: that would be, up to a batch). */
  auditEventsDeleted: number;
  /** True when a step hit its batch size or the budget: the next pass continues. */
  more: boolean;
  /** Subrequests this pass made. */
  subrequests: number;
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
    const budget = new Budget(options.subrequests ?? DEFAULT_SUBREQUESTS);
    const report: GcReport = { dryRun: options.dryRun, retention: { tags: [], manifests: [] }, evicted: [], unmarked: 0, marked: [], deleted: [], orphans: [], bytesFreed: 0, auditEventsDeleted: 0, more: false, subrequests: 0 };
    // Each step runs only if the budget affords it; one that cannot leaves the rest to the next pass.
    const step = async (calls: number, work: () => Promise<void>) => {
      if (!budget.spend(calls)) {
        report.more = true;
        return;
      }
      await work();
    };

    // Retention first: what it deletes stops referencing blobs, which the steps below then collect.
    if (options.retention?.rules.length) {
      report.retention = await applyRetention(this.db, options.retention.rules, options.retention.immutable, { dryRun: options.dryRun, limit: options.batch, now, budget });
      report.more ||= report.retention.more ?? false;
    }

    // Eviction next, for the same reason.
    for (const mirror of options.mirrors ?? []) {
      if (mirror.maxBytes === undefined) continue;
      const maxBytes = mirror.maxBytes;
      await step(2, async () => {
        const evicted = await this.evict(mirror.prefix, maxBytes, options, budget);
        report.evicted.push(...evicted.entries.map((entry) => ({ ...entry, prefix: mirror.prefix })));
        report.more ||= evicted.more;
      });
    }

    await step(1, async () => {
      report.unmarked = await this.records.unmark(options.dryRun, options.batch);
    });

    await step(1, async () => {
      const deletable = await this.records.deletable(before, options.batch);
      report.more ||= deletable.length === options.batch;
      if (options.dryRun) {
        report.deleted = deletable;
        return;
      }
      for (let at = 0; at < deletable.length; at += DELETES_PER_BATCH) {
        if (!budget.spend(2)) {
          report.more = true;
          break;
        }
        const deleted = await this.records.deleteMany(deletable.slice(at, at + DELETES_PER_BATCH).map((blob) => blob.digest), before);
        // Rows first, then bytes: a crash in between leaves an orphan object, collected later, never a dangling row.
        if (deleted.length > 0) await this.bucket.delete(deleted.map((blob) => blob.objectKey));
        report.deleted.push(...deleted);
      }
    });

    // The mark walk: pages of GC_BATCH_SIZE blobs from the saved cursor, as many as the budget affords once the
    // steps after it are provided for (at most MARK_PAGES_PER_PASS), so that 200,000 blobs take a few passes, not
    // hundreds (`npm run bench -- --only=cost` counts them).
    await step(options.dryRun ? 2 : 4, async () => {
      const cursor = "markable:after";
      let after = (await this.records.cursor(cursor)) ?? "";
      for (let pages = 1; ; pages++) {
        const page = await this.records.markable(before, options.batch, after);
        if (!options.dryRun) {
          await this.records.mark(page.blobs.map((blob) => blob.digest), before, now);
          await this.records.setCursor(cursor, page.next ?? undefined);
        }
        report.marked.push(...page.blobs);
        if (page.next === null) break;
        after = page.next;
        const calls = options.dryRun ? 1 : 3;
        if (pages === MARK_PAGES_PER_PASS || budget.left - calls < RESERVED_AFTER_MARKING || !budget.spend(calls)) {
          report.more = true;
          break;
        }
      }
    });

    for (const prefix of ORPHAN_PREFIXES) {
      await step(options.dryRun ? 3 : 5, async () => {
        const orphans = await this.orphans(prefix, before, options);
        if (!options.dryRun && orphans.length > 0) await this.bucket.delete(orphans.map((orphan) => orphan.key));
        report.orphans.push(...orphans);
      });
    }

    // Last, with what the budget leaves: the oldest audit rows, a batch per call from the front of the time index.
    if (options.auditRetentionDays) {
      const audit = new AuditRecords(this.db);
      const cutoff = now - options.auditRetentionDays * 86_400_000;
      for (let batches = 0; ; batches++) {
        if (batches === AUDIT_BATCHES_PER_PASS || !budget.spend(1)) {
          report.more = true;
          break;
        }
        const deleted = options.dryRun ? await audit.countBefore(cutoff, options.batch) : await audit.deleteBefore(cutoff, options.batch);
        report.auditEventsDeleted += deleted;
        // A dry run deletes nothing, so counting on would count the same rows again.
        if (deleted < options.batch || options.dryRun) break;
      }
    }

    report.bytesFreed = [...report.deleted, ...report.orphans].reduce((sum, item) => sum + item.size, 0);
    report.subrequests = budget.used;
    return report;
  }

  /**
   * The least recently pulled of the mirror's manifests, oldest first, until what is left fits maxBytes: at most a
   * batch per pass, deleted DELETES_PER_BATCH at a time. A manifest pulled since it was chosen stays.
   */
  private async evict(prefix: string, maxBytes: number, options: GcOptions, budget: Budget): Promise<{ entries: MirrorEntry[]; more: boolean }> {
    const contents = new MirrorContentRecords(this.db);
    const usage = await contents.usage(prefix);
    if (usage.bytes <= maxBytes) return { entries: [], more: false };
    const chosen: MirrorEntry[] = [];
    let excess = usage.bytes - maxBytes;
    for (const entry of await contents.leastRecentlyPulled(prefix, options.batch)) {
      if (excess <= 0) break;
      chosen.push(entry);
      excess -= entry.bytes;
    }
    if (options.dryRun) return { entries: chosen, more: excess > 0 };
    const evicted: MirrorEntry[] = [];
    for (let at = 0; at < chosen.length; at += DELETES_PER_BATCH) {
      if (!budget.spend(1)) return { entries: evicted, more: true };
      evicted.push(...(await contents.evict(prefix, chosen.slice(at, at + DELETES_PER_BATCH), { by: GC, detail: { reason: "eviction", mirror: prefix } })));
    }
    // Still over (a batch was not enough, or some were pulled meanwhile): the next pass goes on.
    return { entries: evicted, more: excess > 0 || evicted.length < chosen.length };
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
