import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { pathOf } from "../routes/path";
import { AccessTokenRecords } from "../storage/access-token-records";
import { bearerAccess, OPEN_ACCESS, publicScopesOf, scopedAccess, type Access } from "./access";
import { parseBasic, verifySecret, type Credential } from "./credentials";
import { OIDC_USER, oidcCredential } from "./oidc";
import type { Action } from "./scopes";
import { verifyToken } from "./signing";
import { verifyLimited } from "./throttle";

/** The token service name: configured, or the host the registry is reached at. */
export function serviceOf(c: Context<AppEnv>): string {
  return c.var.registry.config.REGISTRY_SERVICE ?? new URL(c.req.url).host;
}

/** Works out who the caller is and what it may do; a presented credential that is not valid is refused at once. */
export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set("access", await accessOf(c));
  await next();
};

async function accessOf(c: Context<AppEnv>): Promise<Access> {
  const { config } = c.var.registry;
  if (config.AUTH_MODE === "open") return OPEN_ACCESS;
  const publicScopes = publicScopesOf(config.PUBLIC_REPOSITORIES);
  const header = c.req.header("Authorization");
  if (!header) return scopedAccess("anonymous", "none", publicScopes);
  if (/^Bearer\s/i.test(header)) {
    try {
      const claims = await verifyToken(config.TOKEN_SIGNING_KEY!, serviceOf(c), header.replace(/^Bearer\s+/i, "").trim());
      return bearerAccess(claims, publicScopes);
    } catch (error) {
      if (error instanceof RegistryError || (error as Error).name === "ConfigError") throw error;
      throw challenge(c, null, "invalid_token");
    }
  }
  const credential = await authenticateBasic(c, header);
  return scopedAccess(credential.subject, "basic", [...credential.scopes, ...publicScopes], credential.actor);
}

/** Verifies an `Authorization: Basic` header's password (a malformed header is a wrong password). */
export async function authenticateBasic(c: Context<AppEnv>, header: string): Promise<Credential> {
  const basic = parseBasic(header) ?? { user: "", password: "" };
  return authenticatePassword(c, basic.user, basic.password);
}

/**
 * Verifies a password (an access token or the admin token, or with user name OIDC_USER a CI job's OIDC token) under
 * the failed-login limit; 401 when it is none of these.
 */
export async function authenticatePassword(c: Context<AppEnv>, user: string, password: string): Promise<Credential> {
  const { config } = c.var.registry;
  const records = new AccessTokenRecords(c.env.DB);
  const verify = user === OIDC_USER ? () => oidcCredential(config, password) : () => verifySecret(records, config.ADMIN_TOKEN, password);
  const credential = await verifyLimited(c, { user, secret: password }, verify);
  if (credential) return credential;
  throw new RegistryError("UNAUTHORIZED", null, {
    message: "invalid credentials",
    headers: { "WWW-Authenticate": `Basic realm="${serviceOf(c)}"` },
  });
}

const CHALLENGE_ACTIONS: Record<Action, string> = { pull: "pull", push: "pull,push", delete: "delete" };

/** A 401 with the Bearer challenge Docker clients follow to the token endpoint. */
export function challenge(
  c: Context<AppEnv>,
  scope: { repository: string; action: Action } | "catalog" | null,
  error?: "invalid_token" | "insufficient_scope",
): RegistryError {
  const parts = [`realm="${new URL(c.req.url).origin}/token"`, `service="${serviceOf(c)}"`];
  if (scope === "catalog") parts.push('scope="registry:catalog:*"');
  else if (scope) parts.push(`scope="repository:${scope.repository}:${CHALLENGE_ACTIONS[scope.action]}"`);
  if (error) parts.push(`error="${error}"`);
  const detail =
    scope === "catalog"
      ? [{ Type: "registry", Name: "catalog", Action: "*" }]
      : scope
        ? [{ Type: "repository", Name: scope.repository, Action: scope.action }]
        : null;
  return new RegistryError("UNAUTHORIZED", detail, { headers: { "WWW-Authenticate": `Bearer ${parts.join(",")}` } });
}

/** Refuses the request unless the caller may do `action` on the repository named in the (validated) path. */
export function requires(action: Action): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { repository } = pathOf(c);
    const access = c.var.access;
    if (!access.allows(repository, action)) {
      // A password that lacks the scope will not get it from a token either.
      if (access.via === "basic") {
        throw new RegistryError("DENIED", [{ Type: "repository", Name: repository, Action: action }]);
      }
      throw challenge(c, { repository, action }, access.via === "bearer" ? "insufficient_scope" : undefined);
    }
    await next();
  };
}

/** GET /v2/: answers 200 only to a caller that identified itself, so that `docker login` finds the token realm. */
export const requiresIdentity: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.var.access.via === "none") throw challenge(c, null);
  await next();
};
