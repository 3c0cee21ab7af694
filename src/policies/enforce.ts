import type { Context } from "hono";
import { ADMIN_ACTOR, ANONYMOUS_ACTOR, type AuditEvent } from "../audit/events";
import { recordPullDecision } from "../audit/requests";
import type { AppEnv, Registry } from "../context";
import { RegistryError } from "../errors";
import { ManifestRecords } from "../storage/manifest-records";
import { policiesFor, type PullPolicy } from "./config";
import { describe, failures, needs, type Failure, type ManifestKind, type PullFacts } from "./decide";
import { kindOf } from "./kind";

// Pull policies (README: "Pull policies"), checked by the manifest route on the manifest it is about to serve: a
// tag is resolved first, so a pull by tag and one by digest are judged by the same digest. Blobs are not checked:
// they are content addressed and shared between images (a layer of a refused image is a layer of others), and a
// client learns their digests from a manifest, which is what is refused (as Harbor does).

/** Names, in a response, what audit-mode policies (and an admin's bypass) would have refused. */
export const POLICY_WARNING_HEADER = "X-Registry-Policy-Warning";
/** The refusal's message, also in a header: a refused HEAD has no body to carry it. */
export const POLICY_REFUSAL_HEADER = "X-Registry-Policy-Refusal";

/** The manifest a pull is about to be served. */
export interface PulledManifest {
  digest: string;
  mediaType: string;
  /** Its bytes when they are at hand (kept in D1), else null. */
  body: string | null;
  /** The tag it was pulled by, for the audit log. */
  tag?: string;
}

/** Indexes of the repository that list an image, checked for a verified signature when the image has none. */
const MAX_INDEXES = 4;

/**
 * Refuses (DENIED) a manifest that fails an enforced policy of its repository, unless an admin asks (recorded), and
 * says in a header what audit-mode policies would have refused (recorded too). Returns whether any policy matched
 * the repository: with none, nothing is read.
 */
export async function enforcePullPolicies(c: Context<AppEnv>, repository: string, pulled: PulledManifest): Promise<boolean> {
  const policies = policiesFor(c.var.registry.config.PULL_POLICIES, repository);
  if (policies.length === 0) return false;
  const kind = kindOf(pulled.mediaType, pulled.body);
  const failed = failures(policies, await factsOf(c.var.registry, repository, pulled.digest, kind, policies));
  if (failed.length === 0) return true;
  const enforced = failed.filter((failure) => failure.policy.mode === "enforce");
  const audited = failed.filter((failure) => failure.policy.mode === "audit");
  const admin = c.var.access?.actor === ADMIN_ACTOR;
  const event = (action: AuditEvent["action"], listed: Failure[], result: AuditEvent["result"]): AuditEvent => ({
    action,
    repository,
    target: pulled.digest,
    result,
    detail: { method: c.req.method, kind, ...(pulled.tag !== undefined && { tag: pulled.tag }), policies: listed.map(({ policy, reason }) => ({ name: policy.name, mode: policy.mode, reason })) },
  });
  if (enforced.length > 0 && !admin) {
    const message = enforced.map(describe).join("; ");
    recordPullDecision(c, event("policy.refuse", enforced, "denied"));
    throw new RegistryError("DENIED", { repository, digest: pulled.digest, policies: enforced.map(({ policy, reason }) => ({ name: policy.name, reason })) }, {
      message,
      headers: { [POLICY_REFUSAL_HEADER]: headerValue(message) },
    });
  }
  if (enforced.length > 0) recordPullDecision(c, event("policy.bypass", enforced, "ok"));
  if (audited.length > 0 && firstWarning(c.var.access?.actor ?? ANONYMOUS_ACTOR, repository, pulled.digest)) recordPullDecision(c, event("policy.warn", audited, "ok"));
  const warnings = [...enforced.map((failure) => `${describe(failure)} (bypassed: admin)`), ...audited.map((failure) => `${describe(failure)} (audit mode)`)];
  c.header(POLICY_WARNING_HEADER, headerValue(warnings.join("; ")));
  return true;
}

// A reason may quote what a signature says (a certificate's subject, a payload's digest): a header gets printable
// ASCII only, and not too much of it.
const MAX_HEADER_CHARS = 1024;
const headerValue = (text: string) => text.replace(/[^\x20-\x7e]/g, "?").slice(0, MAX_HEADER_CHARS);

/** Reads what the policies ask about the manifest: its verdict and its findings' summary, one indexed read each. */
async function factsOf(registry: Registry, repository: string, digest: string, kind: ManifestKind, policies: PullPolicy[]): Promise<PullFacts> {
  const need = needs(policies, kind);
  const [signature, vulnerabilities] = await Promise.all([
    need.signature ? registry.signatures.verdict(repository, digest) : undefined,
    // Computed now when attached reports changed since it was stored (as the tag API does).
    need.vulnerabilities ? registry.vulnerabilities.summary(repository, digest) : undefined,
  ]);
  const facts: PullFacts = { kind, ...(signature && { signature }), ...(vulnerabilities !== undefined && { vulnerabilities }) };
  // An image of a multi-platform index is covered by the index's signature (which names its digest): cosign signs
  // the index unless asked to sign each image too (--recursive), and clients then pull the images by digest.
  if (signature && signature.status !== "verified" && kind === "image") facts.signedIndex = await verifiedIndexOf(registry, repository, digest);
  return facts;
}

async function verifiedIndexOf(registry: Registry, repository: string, digest: string): Promise<string | null> {
  const indexes = await new ManifestRecords(registry.db.current).indexesOf(repository, digest, MAX_INDEXES);
  if (indexes.length === 0) return null;
  const verdicts = await registry.signatures.verdicts(repository, indexes);
  return indexes.find((index) => verdicts.get(index)?.status === "verified") ?? null;
}

// Audit-mode warnings are recorded once per caller, repository and digest per WARN_EVERY_MS in an isolate: a fleet
// pulling an image that would be refused costs a row per caller and ten minutes, not a row per pull.
const WARN_EVERY_MS = 10 * 60_000;
const MAX_WARNED = 1000;
const warned = new Map<string, number>();

function firstWarning(actor: string, repository: string, digest: string, now = Date.now()): boolean {
  const key = `${actor}\n${repository}@${digest}`;
  if ((warned.get(key) ?? -Infinity) > now - WARN_EVERY_MS) return false;
  warned.delete(key);
  if (warned.size >= MAX_WARNED) warned.delete(warned.keys().next().value!);
  warned.set(key, now);
  return true;
}
