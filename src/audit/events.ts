import type { Context } from "hono";
import type { AppEnv } from "../context";
import type { AuditResult } from "../storage/audit-records";

// The audit log (README: "Audit log"): what is recorded, and who it names. A change writes its row in its own D1
// batch (the storage classes take an Actor and add the row's statement); what changes nothing (a login, a refusal,
// an admin run) writes its row alone.

export const AUDIT_ACTIONS = [
  "manifest.push",
  // A push by tag that moved the tag from another digest (detail.from).
  "tag.move",
  "manifest.delete",
  "tag.delete",
  "blob.delete",
  // Only ever refused: an upload is recorded by the push of the manifest that uses it.
  "blob.upload",
  "token.create",
  "token.revoke",
  "login",
  "admin.gc",
  "admin.prewarm",
  // OSV imports and refreshes through the admin API (SBOM scanning).
  "admin.osv",
  // Pulls pull policies refused (denied), let an admin through (bypass), or would refuse in audit mode (warn).
  "policy.refuse",
  "policy.bypass",
  "policy.warn",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Who did it, as the log names them, and from where. */
export interface Actor {
  /** An access token's id, "admin", an OIDC identity (oidc:<issuer>#<sub>), "gc" or "anonymous". */
  id: string;
  /** The client's address (CF-Connecting-IP); null for the registry's own work. */
  client: string | null;
}

export const ADMIN_ACTOR = "admin";
export const ANONYMOUS_ACTOR = "anonymous";
/** Garbage collection, retention and eviction, whoever started the pass. */
export const GC: Actor = { id: "gc", client: null };

/** The caller of a request (`id`, else who authentication found: anonymous before it), and its address. */
export function actorOf(c: Context<AppEnv>, id: string = c.var.access?.actor ?? ANONYMOUS_ACTOR): Actor {
  // Cloudflare sets the header; anything longer than an IPv6 address did not come from it.
  return { id, client: c.req.header("CF-Connecting-IP")?.slice(0, 45) ?? null };
}

/** What happened (the time is when its row is written). */
export interface AuditEvent {
  action: AuditAction;
  repository?: string | null;
  target?: string | null;
  result?: AuditResult;
  detail?: Record<string, unknown>;
}
