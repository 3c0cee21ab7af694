import { z } from "zod";
import { patternMatches, RepositoryPattern } from "../auth/scopes";
import { jsonList } from "../json-setting";

// PULL_POLICIES: rules a manifest must pass to be pulled, per repository pattern (README: "Pull policies").
//   [{"name": "signed-prod", "repositories": ["prod/*"], "requireSignature": true, "mode": "enforce"},
//    {"name": "no-critical", "repositories": ["prod/*", "staging/*"], "maxSeverity": "critical", "mode": "audit"}]
// Strict: a misspelt rule (requireSignatures) would otherwise be a policy that checks nothing.

/** Severities a policy can refuse at, worst first: a finding at `maxSeverity` or worse refuses the image. */
export const POLICY_SEVERITIES = ["critical", "high", "medium", "low"] as const;
export type PolicySeverity = (typeof POLICY_SEVERITIES)[number];

export const PullPolicy = z
  .strictObject({
    // Named in refusals, response headers and the audit log: a header's value, so a plain token.
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "letters, digits, '.', '_' and '-', at most 64"),
    repositories: z.array(RepositoryPattern).min(1),
    requireSignature: z.literal(true).optional(),
    maxSeverity: z.enum(POLICY_SEVERITIES).optional(),
    requireScan: z.literal(true).optional(),
    // "audit": pulls are allowed, and what would have been refused is recorded and said in a response header.
    mode: z.enum(["enforce", "audit"]),
  })
  .refine((policy) => policy.requireSignature || policy.maxSeverity !== undefined || policy.requireScan, {
    message: "checks nothing: give requireSignature, maxSeverity or requireScan",
  });
export type PullPolicy = z.infer<typeof PullPolicy>;

export const PullPolicies = jsonList(PullPolicy).superRefine((policies, context) => {
  const seen = new Map<string, number>();
  policies.forEach((policy, index) => {
    const first = seen.get(policy.name);
    if (first !== undefined) context.addIssue({ code: "custom", path: [index, "name"], message: `"${policy.name}" is also the name of entry ${first}` });
    else seen.set(policy.name, index);
  });
});

const memo = new WeakMap<readonly PullPolicy[], Map<string, PullPolicy[]>>();
const MAX_MEMO = 1000;

/** The policies whose patterns match the repository (none: the pull is not checked at all), remembered per isolate. */
export function policiesFor(policies: readonly PullPolicy[], repository: string): PullPolicy[] {
  if (policies.length === 0) return [];
  let byRepository = memo.get(policies);
  if (!byRepository) memo.set(policies, (byRepository = new Map()));
  const found = byRepository.get(repository);
  if (found) return found;
  const matching = policies.filter((policy) => policy.repositories.some((pattern) => patternMatches(pattern, repository)));
  if (byRepository.size >= MAX_MEMO) byRepository.clear();
  byRepository.set(repository, matching);
  return matching;
}
