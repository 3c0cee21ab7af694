import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { AuditRecords } from "../storage/audit-records";
import { accessTokenIdOf, sameSecret } from "../auth/credentials";
import { actorOf, ADMIN_ACTOR, ANONYMOUS_ACTOR, type Actor, type AuditAction, type AuditEvent } from "./events";

// Rows for what changes nothing: refused writes, logins and pull policies' decisions. Each is written alone, after the
// answer is known.
//
// Bounded, so that no flood writes rows without end:
// - A refused write is recorded only for an authenticated caller (a token of ours, a password that verified): an
//   anonymous request costs no row, and every row a flood costs names the credential it came with (which the admin
//   can revoke). A refusal before authentication (a wrong password) is a failed login instead.
// - A failed login is recorded only when the failed-login limit counted it (src/auth/throttle.ts): a secret not tried
//   from that client within the window, so at most the limit's 10 per client and minute, and the block that follows
//   once. Without the limiter binding nothing limits them, so an isolate then writes at most WINDOW_ROWS a minute.
//   With it, an isolate still writes at most FLOOD_ROWS a minute: the limit is per client (an IPv6 /64), and one
//   /48 (a free tunnel's) holds 65,536 clients, 11 rows a minute each.
// - A caller's refusals: at most WINDOW_ROWS a minute per isolate (a job retrying a refused push in a loop).
// - A credential's logins: at most WINDOW_ROWS a minute per isolate (a client fetching bearer tokens in a loop).
const WINDOW_MS = 60_000;
const WINDOW_ROWS = 60;
const FLOOD_ROWS = 600;
const windows = new Map<string, { start: number; rows: number }>();
// Oldest out first past this many keys (callers), so the map stays small whatever the traffic.
const MAX_KEYS = 1000;

function withinBound(key: string, limit = WINDOW_ROWS, now = Date.now()): boolean {
  const window = windows.get(key);
  if (!window || now - window.start >= WINDOW_MS) {
    windows.delete(key);
    windows.set(key, { start: now, rows: 1 });
    if (windows.size > MAX_KEYS) windows.delete(windows.keys().next().value!);
    return true;
  }
  window.rows += 1;
  return window.rows <= limit;
}

/** Writes a row that records no change; a failure to write it is logged, not answered (the answer stands). */
async function recordAlone(c: Context<AppEnv>, by: Actor, event: AuditEvent): Promise<void> {
  try {
    await new AuditRecords(c.env.DB).record(by, event);
  } catch (error) {
    console.error(JSON.stringify({ event: "audit-failed", action: event.action, error: String(error) }));
  }
}

/** Whether the error refused the caller what it asked (not: asked it wrongly, or failed to do it). */
function isRefusal(error: Error | undefined, c: Context<AppEnv>): error is RegistryError {
  if (!(error instanceof RegistryError)) return false;
  if (error.code === "DENIED") return true;
  // A bearer token without the scope is answered with a challenge (insufficient_scope), not DENIED.
  return error.code === "UNAUTHORIZED" && c.var.access?.via === "bearer";
}

/**
 * Records a refusal of what the request asked (`describe` names it) when the caller is authenticated: DENIED
 * (scopes, immutable tags, the quota, a read-only mirror) and a bearer token's missing scope.
 */
export function auditsRefusals(describe: (c: Context<AppEnv>) => AuditEvent | null): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    const access = c.var.access;
    if (!isRefusal(c.error, c) || !access || access.actor === ANONYMOUS_ACTOR || (access.via !== "basic" && access.via !== "bearer")) return;
    const event = describe(c);
    if (!event || !withinBound(`refused/${access.actor}`)) return;
    await recordAlone(c, actorOf(c), { ...event, result: "denied", detail: { ...event.detail, code: c.error.code, message: c.error.message.slice(0, 200) } });
  };
}

/** What a write to the registry API asks for, from its validated path (null for a request that has none). */
export function registryWrite(c: Context<AppEnv>): AuditEvent | null {
  const path = c.var.path;
  const method = c.req.method;
  if (!path || method === "GET" || method === "HEAD") return null;
  const { repository, reference, digest } = path;
  let action: AuditAction;
  let target: string | null = null;
  if (reference) {
    target = "tag" in reference ? reference.tag : reference.digest.digest;
    action = method === "PUT" ? "manifest.push" : "tag" in reference ? "tag.delete" : "manifest.delete";
  } else if (digest && method === "DELETE") {
    action = "blob.delete";
    target = digest.digest;
  } else {
    action = "blob.upload";
  }
  return { action, repository, target, detail: { method } };
}

/** Where a password was presented, for the log: the token endpoint, the web UI, the admin API, or the registry API. */
function placeOf(c: Context<AppEnv>): "token" | "web" | "admin" | "registry" {
  const path = c.req.path;
  if (path === "/token") return "token";
  if (path === "/login") return "web";
  if (path.startsWith("/admin/")) return "admin";
  return "registry";
}

const MAX_USER_CHARS = 64;

/**
 * The user name a login presented, or null when it may be a secret: some clients send the secret as the user name
 * (curl -u "$TOKEN:"), so an access token, the admin token, or anything longer than a name, is not recorded.
 */
async function userOf(c: Context<AppEnv>, user: string): Promise<string | null> {
  if (user.length > MAX_USER_CHARS || accessTokenIdOf(user) !== null) return null;
  const adminToken = c.var.registry?.config.ADMIN_TOKEN;
  if (adminToken && (await sameSecret(user, adminToken))) return null;
  return user;
}

/** What a login presented, never the secret: the access token's id when it is shaped like one, and the user name. */
async function claimed(c: Context<AppEnv>, attempt: { user: string; secret: string }): Promise<Pick<AuditEvent, "target" | "detail">> {
  const place = placeOf(c);
  const target = place === "admin" ? "admin" : accessTokenIdOf(attempt.secret);
  const user = await userOf(c, attempt.user);
  return { target, detail: { place, ...(user === null ? { user: null, userWithheld: "may be a secret" } : { user }) } };
}

/**
 * A failed login the failed-login limit counted ("failed"), or the attempt that got its client blocked ("denied"):
 * the caller is anonymous, the target is what it claimed to be.
 */
export async function recordFailedLogin(c: Context<AppEnv>, attempt: { user: string; secret: string }, result: "failed" | "denied"): Promise<void> {
  if (!withinBound("logins", c.env.AUTH_FAILURES ? FLOOD_ROWS : WINDOW_ROWS)) return;
  const { target, detail } = await claimed(c, attempt);
  await recordAlone(c, actorOf(c, ANONYMOUS_ACTOR), { action: "login", target, result, detail: { ...detail, ...(result === "denied" && { reason: "too many failed logins" }) } });
}

/** A login that got a token (/token) or a web UI session, by the credential's actor. */
export async function recordLogin(c: Context<AppEnv>, actor: string): Promise<void> {
  if (!withinBound(`login/${actor}`)) return;
  await recordAlone(c, actorOf(c, actor), { action: "login", detail: { place: placeOf(c) } });
}

/**
 * A pull that pull policies refused, let an admin through, or would refuse in audit mode (src/policies/enforce.ts),
 * written after the response: bounded per caller as refusals are, anonymous callers sharing one bound.
 */
export function recordPullDecision(c: Context<AppEnv>, event: AuditEvent): void {
  if (!withinBound(`pulls/${c.var.access?.actor ?? ANONYMOUS_ACTOR}`)) return;
  c.executionCtx.waitUntil(recordAlone(c, actorOf(c), event));
}

/** An admin API run that changes nothing in D1 itself (a GC or pre-warming pass: they record their own deletions). */
export async function recordAdminRun(c: Context<AppEnv>, action: "admin.gc" | "admin.prewarm" | "admin.osv", detail: Record<string, unknown>): Promise<void> {
  await recordAlone(c, actorOf(c, ADMIN_ACTOR), { action, detail });
}
