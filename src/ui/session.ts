import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { jwtVerify, SignJWT } from "jose";
import { ADMIN_ACTOR } from "../audit/events";
import { OPEN_ACCESS, publicScopesOf, scopedAccess, type Access } from "../auth/access";
import { accessTokenIdOf, ADMIN_SCOPES, hashSecret, type Credential } from "../auth/credentials";
import { serviceOf } from "../auth/middleware";
import { signingKeys } from "../auth/signing";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { AccessTokenRecords } from "../storage/access-token-records";

// The web UI's login: a person pastes an access token once; the browser keeps a signed session (ES256, the
// registry's own key), never the secret. The session names the access token, whose row is read on every request,
// so a revoked or expired token ends its sessions at once and scope changes apply at once.

const COOKIE = "registry_session";
const LIFETIME_SECONDS = 12 * 60 * 60;
const ADMIN = "admin";
// Sessions have their own audience: a session is no registry bearer token, and a bearer token is no session.
const audienceOf = (c: Context<AppEnv>) => `${serviceOf(c)}#web-ui`;

/** The admin token's fingerprint: changing ADMIN_TOKEN ends admin sessions. */
async function adminFingerprint(adminToken: string): Promise<string> {
  return (await hashSecret(adminToken)).slice(0, 16);
}

/** Starts a session for a verified credential (from the secret that proved it). */
export async function startSession(c: Context<AppEnv>, credential: Credential, secret: string): Promise<void> {
  const { config } = c.var.registry;
  const { privateKey, kid } = await signingKeys(config.TOKEN_SIGNING_KEY!);
  const tokenId = credential.admin ? ADMIN : accessTokenIdOf(secret);
  if (tokenId === null) throw new Error("a verified access token without an id");
  const jwt = await new SignJWT({
    tid: tokenId,
    ...(credential.admin && { adm: await adminFingerprint(config.ADMIN_TOKEN!) }),
  })
    .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
    .setIssuer(serviceOf(c))
    .setAudience(audienceOf(c))
    .setSubject(credential.subject)
    .setIssuedAt()
    .setExpirationTime(`${LIFETIME_SECONDS}s`)
    .sign(privateKey);
  setCookie(c, COOKIE, jwt, {
    httpOnly: true,
    secure: new URL(c.req.url).protocol === "https:",
    sameSite: "Strict",
    path: "/",
    maxAge: LIFETIME_SECONDS,
  });
}

export function endSession(c: Context<AppEnv>): void {
  deleteCookie(c, COOKIE, { path: "/", secure: new URL(c.req.url).protocol === "https:" });
}

/** What the visitor may see and do: everything on an open registry, else its session's token and public rules. */
async function visitorAccess(c: Context<AppEnv>): Promise<Access> {
  const { config } = c.var.registry;
  if (config.AUTH_MODE === "open") return OPEN_ACCESS;
  const publicScopes = publicScopesOf(config.PUBLIC_REPOSITORIES);
  const anonymous = scopedAccess("anonymous", "none", publicScopes);
  const cookie = getCookie(c, COOKIE);
  if (!cookie) return anonymous;
  const credential = await sessionCredential(c, cookie);
  if (!credential) {
    endSession(c);
    return anonymous;
  }
  return scopedAccess(credential.subject, "basic", [...credential.scopes, ...publicScopes], credential.actor);
}

// A session is verified by its signature, not compared with a secret: it cannot be guessed, so the failed-login
// limit (src/auth/throttle.ts) does not apply to it.
async function sessionCredential(c: Context<AppEnv>, cookie: string): Promise<Credential | null> {
  const { config } = c.var.registry;
  let claims;
  try {
    const { publicKey } = await signingKeys(config.TOKEN_SIGNING_KEY!);
    ({ payload: claims } = await jwtVerify(cookie, publicKey, {
      algorithms: ["ES256"],
      issuer: serviceOf(c),
      audience: audienceOf(c),
      requiredClaims: ["exp", "sub"],
    }));
  } catch {
    return null;
  }
  if (claims.tid === ADMIN) {
    const current = config.ADMIN_TOKEN ? await adminFingerprint(config.ADMIN_TOKEN) : null;
    return current !== null && claims.adm === current ? { subject: ADMIN, actor: ADMIN_ACTOR, scopes: ADMIN_SCOPES, admin: true, expiresAt: null } : null;
  }
  if (typeof claims.tid !== "string") return null;
  const record = await new AccessTokenRecords(c.env.DB).find(claims.tid);
  if (!record || record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt <= Date.now())) return null;
  return { subject: record.name, actor: record.id, scopes: record.scopes, admin: false, expiresAt: record.expiresAt };
}

/** Whether the visitor logged in with the admin token (an access token's actor is its id, never "admin"). */
export function isAdmin(access: Access): boolean {
  return access.via === "basic" && access.actor === ADMIN_ACTOR;
}

/** Sets c.var.access for a web UI page, from the session cookie. */
export const visitor: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set("access", await visitorAccess(c));
  await next();
};

/**
 * Refuses a state-changing request that a page of this registry did not send (CSRF): the browser's Origin must be
 * this origin. The session cookie is SameSite=Strict as well.
 */
export const sameOrigin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const origin = c.req.header("Origin") ?? (c.req.header("Sec-Fetch-Site") === "same-origin" ? new URL(c.req.url).origin : null);
  if (origin !== new URL(c.req.url).origin) {
    throw new RegistryError("DENIED", null, { message: "This form must be sent from a page of this registry." });
  }
  await next();
};
