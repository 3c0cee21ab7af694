import { z } from "zod";
import { RegistryError } from "../errors";
import type { Verdict } from "../signatures/verdicts";
import type { TagFilter } from "../storage/search-records";

// The tag API's filters (README: "Filtering by signature and findings"): ?signed=true|false&critical=true|false.

const Flag = z.enum(["true", "false"]).transform((value) => value === "true").optional();
const TagFilterQuery = z.object({ signed: Flag, critical: Flag });

/** The filters a tag listing's query asks for; a value other than true or false is a 400 naming the parameter. */
export function parseTagFilter(query: (name: string) => string | undefined): TagFilter {
  const result = TagFilterQuery.safeParse({ signed: query("signed"), critical: query("critical") });
  if (!result.success) {
    const issues = result.error.issues.map((issue) => ({ parameter: issue.path.join("."), message: "must be true or false" }));
    throw new RegistryError("REQUEST_INVALID", issues, { message: `${issues.map((issue) => issue.parameter).join(", ")} must be true or false` });
  }
  const { signed, critical } = result.data;
  return { ...(signed !== undefined && { signed }), ...(critical !== undefined && { critical }) };
}

/** The filter as query parameters, for the next page's link. */
export function tagFilterParams(filter: TagFilter): Record<string, string> {
  return {
    ...(filter.signed !== undefined && { signed: String(filter.signed) }),
    ...(filter.critical !== undefined && { critical: String(filter.critical) }),
  };
}

/**
 * Whether a tag the stored verdict and summary let through is still what the filter asks, by its verdict and summary
 * as this response computed them (a stale stored one is computed again for the page).
 */
export function keeps(filter: TagFilter, verdict: Verdict | undefined, summary: { critical: number } | undefined): boolean {
  if (filter.signed !== undefined && (verdict?.status === "verified") !== filter.signed) return false;
  return filter.critical === undefined || (summary?.critical ?? 0) > 0 === filter.critical;
}
