import { z } from "zod";
import { patternMatches, RepositoryPattern } from "../auth/scopes";
import { jsonList } from "../json-setting";
import { RetentionRecords } from "../storage/retention-records";

// RETENTION: rules per repository pattern, applied by the garbage collector (off unless configured).
//   [{"repositories": "team/*", "keepLastTags": 20, "keepTags": "^v[0-9]", "untaggedDays": 7, "deleteReferrers": true}]
export const RetentionRule = z.object({
  repositories: RepositoryPattern,
  /** Keep the newest N tags (by push time); older ones go unless they match keepTags. */
  keepLastTags: z.number().int().min(0).optional(),
  /** Tags matching this regular expression are always kept. */
  keepTags: z
    .string()
    .refine((source) => {
      try {
        new RegExp(source);
        return true;
      } catch {
        return false;
      }
    }, "not a regular expression")
    .optional(),
  /** Manifests no tag and no index references are deleted this many days after their push. */
  untaggedDays: z.number().positive().optional(),
  /** Referrers (signatures, SBOMs) are deleted with the manifest they refer to. */
  deleteReferrers: z.boolean().default(false),
});
export type RetentionRule = z.infer<typeof RetentionRule>;

export const RetentionRules = jsonList(RetentionRule);

export interface RetentionReport {
  tags: { repository: string; tag: string }[];
  manifests: { repository: string; digest: string; size: number }[];
}

/**
 * Applies the retention rules, at most `limit` deletions of each kind per pass. Tags of immutable repositories
 * are never touched. Each manifest is deleted only if, at that moment, no tag and no index in its repository
 * points to it (and, for a referrer, its subject is gone or it is old enough), checked in the delete itself.
 */
export async function applyRetention(
  db: D1Database,
  rules: RetentionRule[],
  immutable: string[],
  options: { dryRun: boolean; limit: number; now: number },
): Promise<RetentionReport> {
  const records = new RetentionRecords(db);
  const report: RetentionReport = { tags: [], manifests: [] };
  for (const rule of rules) {
    if (rule.keepLastTags !== undefined) {
      const keep = rule.keepTags ? new RegExp(rule.keepTags) : null;
      for (const repository of await records.repositories(rule.repositories)) {
        if (immutable.some((pattern) => patternMatches(pattern, repository))) continue;
        const tags = await records.tagsNewestFirst(repository);
        const expired = tags.slice(rule.keepLastTags).filter((tag) => !keep?.test(tag.name));
        for (const tag of expired.slice(0, options.limit - report.tags.length)) {
          if (options.dryRun || (await records.deleteTag(repository, tag.name, tag.digest))) report.tags.push({ repository, tag: tag.name });
        }
      }
    }
    if (rule.untaggedDays !== undefined || rule.deleteReferrers) {
      // Without untaggedDays only referrers whose subject is gone are deleted: nothing else is "older" than 0.
      const olderThan = rule.untaggedDays === undefined ? 0 : options.now - rule.untaggedDays * 86_400_000;
      const candidates = await records.untaggedManifests(rule.repositories, olderThan, rule.deleteReferrers, options.limit);
      for (const candidate of candidates) {
        if (options.dryRun || (await records.deleteUntagged(candidate.repository, candidate.digest, olderThan, rule.deleteReferrers))) {
          report.manifests.push(candidate);
        }
      }
    }
  }
  return report;
}
