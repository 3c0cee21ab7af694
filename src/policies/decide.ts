import type { Verdict } from "../signatures/verdicts";
import type { VulnerabilitySummary } from "../vulnerabilities/store";
import { POLICY_SEVERITIES, type PullPolicy } from "./config";

// What a policy says of one manifest, from its facts: pure, so that every rule and its wording is tested on its own.

/**
 * What a pulled manifest is, as policies see it. Images (an image config and at least one filesystem layer) and
 * indexes are judged; artifacts (signatures, SBOMs, reports, attestations, Helm charts: anything with a subject or
 * without a filesystem layer) are what the checks read and are served as they are.
 */
export type ManifestKind = "image" | "index" | "artifact";

/** The facts a decision needs; a fact a policy does not ask for is not read (undefined). */
export interface PullFacts {
  kind: ManifestKind;
  /** The manifest's own verdict, and whether an index of the repository that lists it (an image) is verified. */
  signature?: Verdict;
  signedIndex?: string | null;
  vulnerabilities?: VulnerabilitySummary | null;
}

export interface Failure {
  policy: PullPolicy;
  /** Why, in a few words: `no verified signature (unsigned)`, `2 critical findings`, `never scanned`. */
  reason: string;
}

/** What the policies need read about a manifest of this kind. */
export function needs(policies: readonly PullPolicy[], kind: ManifestKind): { signature: boolean; vulnerabilities: boolean } {
  if (kind === "artifact") return { signature: false, vulnerabilities: false };
  return {
    signature: policies.some((policy) => policy.requireSignature),
    // An index is judged by its signature only: its images are checked on their own pulls, by their own reports.
    vulnerabilities: kind === "image" && policies.some((policy) => policy.maxSeverity !== undefined || policy.requireScan),
  };
}

/** The policies the manifest fails, each with its first reason (signature, then scan, then severity). */
export function failures(policies: readonly PullPolicy[], facts: PullFacts): Failure[] {
  if (facts.kind === "artifact") return [];
  const found: Failure[] = [];
  for (const policy of policies) {
    const reason = reasonOf(policy, facts);
    if (reason !== null) found.push({ policy, reason });
  }
  return found;
}

function reasonOf(policy: PullPolicy, facts: PullFacts): string | null {
  if (policy.requireSignature) {
    const reason = signatureReason(facts);
    if (reason !== null) return reason;
  }
  if (facts.kind !== "image") return null;
  const summary = facts.vulnerabilities ?? null;
  if (policy.requireScan && !summary?.scanned) return "never scanned";
  if (policy.maxSeverity !== undefined && summary) return severityReason(policy.maxSeverity, summary);
  return null;
}

function signatureReason(facts: PullFacts): string | null {
  const verdict = facts.signature ?? { status: "unsigned" };
  if (verdict.status === "verified" || facts.signedIndex) return null;
  if (verdict.status === "invalid") {
    const first = verdict.problems[0]?.reason;
    return `no verified signature (invalid${first ? `: ${first}` : ""})`;
  }
  if (verdict.status === "pending") return "no verified signature (pending: its signatures are not checked yet)";
  return "no verified signature (unsigned)";
}

/** `2 critical findings`, `1 critical and 3 high findings`: the counts at `max` or worse, when any. */
function severityReason(max: (typeof POLICY_SEVERITIES)[number], summary: VulnerabilitySummary): string | null {
  const counted = POLICY_SEVERITIES.slice(0, POLICY_SEVERITIES.indexOf(max) + 1)
    .map((severity) => ({ severity, count: summary[severity] }))
    .filter(({ count }) => count > 0);
  if (counted.length === 0) return null;
  const parts = counted.map(({ severity, count }) => `${count} ${severity}`);
  const total = counted.reduce((sum, { count }) => sum + count, 0);
  const listed = parts.length === 1 ? parts[0]! : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)!}`;
  return `${listed} ${total === 1 ? "finding" : "findings"}`;
}

/** How a refusal or a warning reads: `policy "signed-prod": no verified signature (unsigned)`. */
export function describe(failure: Failure): string {
  return `policy "${failure.policy.name}": ${failure.reason}`;
}
