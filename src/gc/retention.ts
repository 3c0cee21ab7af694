import { z } from "zod";
import { GC } from "../audit/events";
import { patternMatches, RepositoryPattern } from "../auth/scopes";
import { jsonList, RegularExpression } from "../json-setting";
import { GcRecords } from "../storage/gc-records";
import { RetentionRecords, UnpulledRecords, type ManifestKey } from "../storage/retention-records";
import { Budget } from "./budget";

// RETENTION: rules per repository pattern, applied by the garbage collector (off unless configured).
//   [{"repositories": "team/*", "keepLastTags": 20, "keepTags": "^v[0-9]", "untaggedDays": 7, "deleteReferrers": true}]
export const RetentionRule = z.object({
  repositories: RepositoryPattern,
  /** Keep the newest N tags (by push time); older ones go unless they match keepTags. */
  keepLastTags: z.number().int().min(0).optional(),
  /** Tags matching this regular expression are always kept. */
  keepTags: RegularExpression.optional(),
  /** Manifests no tag and no index references are deleted this many days after their push. */
  untaggedDays: z.number().positive().optional(),
  /**
   * Tags pushed and not pulled for this many days go (ECR's "since image pulled"), their manifests with them when
   * nothing else points at them and they were not pulled by digest either; keepTags and immutable tags stay.
   */
  notPulledDays: z.number().positive().optional(),
  /** Referrers (signatures, SBOMs) are deleted with the manifest they refer to. */
  deleteReferrers: z.boolean().default(false),
});
export type RetentionRule = z.infer<typeof RetentionRule>;

export const RetentionRules = jsonList(RetentionRule);

export interface RetentionReport {
  tags: { repository: string; tag: string }[];
  manifests: { repository: string; digest: string; size: number }[];
  /** True when the budget or the limit stopped it: the next pass goes on where this one stopped. */
  more?: boolean;
}

// Repositories a keepLastTags rule looks at per query.
const REPOSITORIES_PER_PAGE = 50;

/** A walk's saved position, `repository@digest` (a reference to the manifest). */
function parseKey(saved: string | undefined): ManifestKey | null {
  const at = saved?.lastIndexOf("@") ?? -1;
  return saved && at > 0 ? { repository: saved.slice(0, at), digest: saved.slice(at + 1) } : null;
}

/**
 * Applies the retention rules, at most `limit` deletions of each kind per pass and within the pass's subrequest
 * budget. keepLastTags walks the matching repositories a page at a time, and untaggedDays their manifests `limit` at
 * a time, from where the last pass stopped (a cursor per rule), so that every repository is reached however many there
 * are and a pass reads a bounded number of rows. Tags of immutable repositories are never
 * touched. Each manifest is deleted only if, at that moment, no tag and no index in its repository points to it (and,
 * for a referrer, its subject is gone or it is old enough), checked in the delete itself.
 */
export async function applyRetention(
  db: D1Database,
  rules: RetentionRule[],
  immutable: string[],
  options: { dryRun: boolean; limit: number; now: number; budget?: Budget },
): Promise<RetentionReport> {
  const records = new RetentionRecords(db);
  const cursors = new GcRecords(db);
  const budget = options.budget ?? new Budget(Infinity);
  const report: RetentionReport = { tags: [], manifests: [], more: false };
  const afford = (calls: number) => {
    const ok = budget.spend(calls);
    if (!ok) report.more = true;
    return ok;
  };
  for (const [index, rule] of rules.entries()) {
    // Its deletions' audit rows name the rule (RETENTION's index and pattern).
    const note = { by: GC, detail: { reason: "retention", rule: index, repositories: rule.repositories } };
    // Reading and saving the rule's cursor are paid for up front: a walk stopped by the budget still saves where it got.
    const walk = { records, cursors, immutable, options, report, afford };
    if (rule.keepLastTags !== undefined) {
      const keepLast = rule.keepLastTags;
      // Per page of repositories: one query for the tags past the newest keepLastTags, one batch to delete them.
      await walkTags(walk, rule, `retention:${index}:${rule.repositories}`, 3, (repositories) => records.tagsBeyond(repositories, keepLast), async (expired) => {
        report.tags.push(...(options.dryRun ? expired : await records.deleteTags(expired, note)).map(({ repository, name }) => ({ repository, tag: name })));
      });
    }
    if (rule.notPulledDays !== undefined) {
      const unpulled = new UnpulledRecords(db);
      const cutoff = options.now - rule.notPulledDays * 86_400_000;
      // Per page: the tags pushed and not pulled since the cutoff (by tag or their manifest by digest), one batch that
      // deletes them (each re-checked), and the manifests they leave untagged (a query and a batch).
      await walkTags(walk, rule, `retention:${index}:not-pulled:${rule.repositories}`, 5, (repositories) => unpulled.tags(repositories, cutoff), async (expired) => {
        const deleted = options.dryRun ? expired : await unpulled.deleteTags(expired, cutoff, note);
        report.tags.push(...deleted.map(({ repository, name }) => ({ repository, tag: name })));
        // Their manifests, once no tag or index points at them and they were neither pushed nor pulled since the cutoff.
        const manifests = new Map<string, { repository: string; digest: string; tags: string[] }>();
        for (const tag of deleted) {
          const key = `${tag.repository}@${tag.digest}`;
          if (!manifests.has(key)) manifests.set(key, { repository: tag.repository, digest: tag.digest, tags: [] });
          manifests.get(key)!.tags.push(tag.name);
        }
        const candidates = [...manifests.values()];
        report.manifests.push(...(options.dryRun ? await unpulled.wouldGo(candidates, cutoff) : await unpulled.deleteManifests(candidates, cutoff, note)));
      });
    }
    // The cursor's read and save, the walk's query, the deleting batch.
    if ((rule.untaggedDays !== undefined || rule.deleteReferrers) && afford(4)) {
      // Without untaggedDays only referrers whose subject is gone are deleted: nothing else is "older" than 0.
      const olderThan = rule.untaggedDays === undefined ? 0 : options.now - rule.untaggedDays * 86_400_000;
      const cursor = `retention:${index}:untagged:${rule.repositories}`;
      const walked = await records.untaggedManifests(rule.repositories, parseKey(await cursors.cursor(cursor)), olderThan, rule.deleteReferrers, options.limit);
      report.more ||= walked.next !== null;
      const deleted = options.dryRun ? walked.chosen : await records.deleteUntagged(walked.chosen, olderThan, rule.deleteReferrers, note);
      report.manifests.push(...deleted);
      if (!options.dryRun) await cursors.setCursor(cursor, walked.next ? `${walked.next.repository}@${walked.next.digest}` : undefined);
    }
  }
  return report;
}

/**
 * Walks a rule's matching repositories a page at a time from its cursor, while its limit and the budget allow (reading
 * and saving the cursor are paid for up front, `callsPerPage` for each page): `choose` gives a page's candidate tags,
 * those matching keepTags or in immutable repositories are kept, and `remove` deletes (or, in a dry run, reports)
 * the rest. Stopped by the limit inside a page, the next pass starts again at the last repository it reached.
 */
async function walkTags<T extends { repository: string; name: string }>(
  walk: {
    records: RetentionRecords;
    cursors: GcRecords;
    immutable: string[];
    options: { dryRun: boolean; limit: number };
    report: RetentionReport;
    afford: (calls: number) => boolean;
  },
  rule: RetentionRule,
  cursor: string,
  callsPerPage: number,
  choose: (repositories: string[]) => Promise<T[]>,
  remove: (expired: T[]) => Promise<void>,
): Promise<void> {
  const { records, cursors, immutable, options, report, afford } = walk;
  if (!afford(2)) return;
  const keep = rule.keepTags ? new RegExp(rule.keepTags) : null;
  let after = (await cursors.cursor(cursor)) ?? "";
  let wrapped = false;
  while (!wrapped && report.tags.length < options.limit && afford(callsPerPage)) {
    const page = await records.repositories(rule.repositories, after, REPOSITORIES_PER_PAGE);
    const mutable = page.filter((repository) => !immutable.some((pattern) => patternMatches(pattern, repository)));
    const room = options.limit - report.tags.length;
    const expired = (await choose(mutable)).filter((tag) => !keep?.test(tag.name)).slice(0, room);
    await remove(expired);
    if (expired.length === room && expired.length > 0) {
      after = page[page.indexOf(expired.at(-1)!.repository) - 1] ?? after;
      break;
    }
    after = page.at(-1) ?? after;
    if (page.length < REPOSITORIES_PER_PAGE) wrapped = true;
  }
  if (!wrapped) report.more = true;
  if (!options.dryRun) await cursors.setCursor(cursor, wrapped ? undefined : after);
}
