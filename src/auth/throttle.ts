import type { Context } from "hono";
import { recordFailedLogin } from "../audit/requests";
import type { AppEnv } from "../context";
import { toHex } from "../digest";
import { RegistryError } from "../errors";
import { WindowMarks } from "../storage/window-marks";
import { accessTokenIdOf } from "./credentials";

// The failed-login limit (README: "Access control"). Every check of a presented secret (an access token or the
// admin token: a Basic password on /v2/ or GET /token, the password grant, the admin API, the web UI's login form)
// goes through verifyLimited. Bearer JWTs and web UI sessions are ours and verified by their signature: they cannot
// be guessed, so they are neither limited nor cost a lookup.
//
// AUTH_FAILURES.limit() counts and answers in one call and cannot be asked without counting. So a client it refuses
// is marked blocked for the window, and the mark is checked before any secret is verified: while it lasts, a
// correct secret gets the same 429 as a wrong one, and the answer says nothing about the guess. Every new secret is
// counted before it is checked (see verifyLimited), so concurrent guesses are limited as sequential ones are.

/** The AUTH_FAILURES binding's period (wrangler.toml: `simple = { limit = 10, period = 60 }`). */
const WINDOW_MS = 60_000;
const marks = new WindowMarks();

/** What a client presented: the user name (not checked, but it tells clients apart) and the secret. */
export interface Attempt {
  user: string;
  secret: string;
}

/**
 * Verifies the attempt's secret with `verify`, under the limit: 429 with Retry-After, without verifying, while the
 * client is blocked. A secret not seen from this client within the window is counted before it is verified, so that
 * guesses sent all at once cannot outrun the limit; the one past the limit blocks the client for the window. A secret
 * seen within the window is not counted again: one that verified is checked again (it may have been revoked since),
 * one that failed fails again unchecked. So a client re-sending a valid, or a revoked, token spends one count a window.
 */
export async function verifyLimited<T>(c: Context<AppEnv>, attempt: Attempt, verify: () => Promise<T | null>): Promise<T | null> {
  const limiter = c.env.AUTH_FAILURES;
  if (!limiter) {
    const credential = await verify();
    if (credential === null) await recordFailedLogin(c, attempt, "failed");
    return credential;
  }
  const client = await clientOf(c, attempt);
  const now = Date.now();
  const blocked = await marks.until(`blocked/${client}`, now);
  if (blocked !== null) throw tooManyFailures(blocked - now);
  const secret = await sha256(`${client}\n${attempt.secret}`);
  if ((await marks.until(`failed/${secret}`, now)) !== null) return null;
  const seenValid = (await marks.until(`valid/${secret}`, now)) !== null;
  if (!seenValid && !(await limiter.limit({ key: `auth:${client}` })).success) {
    await marks.mark(`blocked/${client}`, now + WINDOW_MS, now);
    await recordFailedLogin(c, attempt, "denied");
    throw tooManyFailures(WINDOW_MS);
  }
  const credential = await verify();
  if (credential === null) {
    // Counted, so recorded in the audit log (a failure already counted in this window is neither).
    await marks.mark(`failed/${secret}`, now + WINDOW_MS, now);
    await recordFailedLogin(c, attempt, "failed");
  } else if (!seenValid) await marks.mark(`valid/${secret}`, now + WINDOW_MS, now);
  return credential;
}

/**
 * Who is counted: the client's address (IPv6 by its /64, which one subscriber holds whole). A request without
 * CF-Connecting-IP (none comes from the internet through Cloudflare without one: wrangler dev, service bindings) is
 * counted by the access token id it presents, and every other such request in one bucket: nothing the attempt
 * chooses freely (a user name) gives it a fresh budget.
 */
async function clientOf(c: Context<AppEnv>, attempt: Attempt): Promise<string> {
  const address = c.req.header("CF-Connecting-IP");
  const tokenId = accessTokenIdOf(attempt.secret);
  const source = address ? `address ${networkOf(address)}` : tokenId ? `token ${tokenId}` : "no address";
  return sha256(source);
}

function networkOf(address: string): string {
  // IPv4, and IPv6 forms that embed one, are counted by the whole address.
  if (!address.includes(":") || address.includes(".")) return address;
  const [head = "", tail = ""] = address.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

async function sha256(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

function tooManyFailures(retryAfterMs: number): RegistryError {
  return new RegistryError("TOOMANYREQUESTS", null, {
    message: "too many failed authentications: retry later",
    headers: { "Retry-After": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  });
}
