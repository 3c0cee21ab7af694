import { configOf, type Env } from "../config";
import { flushPulls } from "../services/pulls";
import { GarbageCollector, type GcReport } from "./collector";

/** One bounded garbage collection pass with the configured settings; logs its report as one JSON line. */
export async function collectGarbage(env: Env, overrides: { dryRun?: boolean } = {}): Promise<GcReport> {
  const config = configOf(env);
  const started = Date.now();
  // Eviction goes by last pull: this isolate's unwritten pulls count too.
  await flushPulls(env.DB);
  const report = await new GarbageCollector(env.DB, env.BLOBS).run({
    dryRun: overrides.dryRun ?? config.GC_DRY_RUN,
    graceMs: config.GC_GRACE_SECONDS * 1000,
    batch: config.GC_BATCH_SIZE,
    retention: { rules: config.RETENTION, immutable: config.IMMUTABLE_TAGS },
    subrequests: config.GC_SUBREQUEST_BUDGET,
    mirrors: config.MIRRORS,
    auditRetentionDays: config.AUDIT_RETENTION_DAYS,
  });
  console.log(JSON.stringify({ event: "gc", ...gcSummary(report), durationMs: Date.now() - started }));
  return report;
}

/** A pass's counts, for its log line and the audit row of a pass an admin ran. */
export function gcSummary(report: GcReport) {
  return {
    dryRun: report.dryRun,
    tagsDeleted: report.retention.tags.length,
    manifestsDeleted: report.retention.manifests.length,
    mirrorEvicted: report.evicted.length,
    mirrorBytesEvicted: report.evicted.reduce((sum, entry) => sum + entry.bytes, 0),
    unmarked: report.unmarked,
    marked: report.marked.length,
    deleted: report.deleted.length,
    orphans: report.orphans.length,
    bytesFreed: report.bytesFreed,
    auditEventsDeleted: report.auditEventsDeleted,
    more: report.more,
    subrequests: report.subrequests,
  };
}
