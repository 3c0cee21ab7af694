import { Hono, type Context } from "hono";
import { recordLogin } from "../audit/requests";
import { publicScopesOf } from "../auth/access";
import { ADMIN_SCOPES, type Credential } from "../auth/credentials";
import { authenticateBasic, authenticatePassword, serviceOf } from "../auth/middleware";
import { actionsFor, parseRequestedScopes, type Action, type Scope } from "../auth/scopes";
import { issueToken, type AccessEntry } from "../auth/signing";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { parseRepositoryName } from "../references";
import { readForm } from "./bodies";

// Docker token authentication: GET /token with HTTP Basic (or none, for anonymous), and the OAuth2 password grant
// (POST /token) some clients prefer. The token grants the subset of the asked scopes the caller holds.
export const token = new Hono<AppEnv>()
  .get("/token", async (c) => {
    const header = c.req.header("Authorization");
    const scopes = c.req.queries("scope") ?? [];
    const credential = header && !onlyPublicPulls(c, scopes) ? await authenticateBasic(c, header) : null;
    return respond(c, credential, scopes, c.req.query("service"));
  })
  .post("/token", async (c) => {
    const form = await readForm(c);
    const field = (name: string) => form.get(name) ?? undefined;
    if (field("grant_type") !== "password") {
      throw new RegistryError("REQUEST_INVALID", { grant_type: field("grant_type") ?? null }, { message: "only the password grant is supported" });
    }
    const scopes = [field("scope") ?? ""];
    // Verified, limited and answered as a Basic password is.
    const credential = onlyPublicPulls(c, scopes) ? null : await authenticatePassword(c, field("username") ?? "", field("password") ?? "");
    return respond(c, credential, scopes, field("service"));
  });

/**
 * Whether every scope asked for is a pull that anyone may make (PUBLIC_REPOSITORIES). Then the credentials sent along
 * are not looked at: the grant is the anonymous one whoever asks. The docker daemon sends its Docker Hub login to a
 * registry-mirrors mirror, which knows nothing of it; checking it would refuse a pull anyone may make (and dockerd
 * would go around the mirror). Not checking it costs nothing: the grant is the same either way, so the answer says
 * nothing about the secret, and no failed login is counted.
 */
function onlyPublicPulls(c: Context<AppEnv>, values: string[]): boolean {
  const requested = parseRequestedScopes(values);
  const publicScopes = publicScopesOf(c.var.registry.config.PUBLIC_REPOSITORIES);
  return (
    requested.length > 0 &&
    requested.every((scope) => {
      if (scope.type !== "repository" || scope.actions.some((action) => action !== "pull")) return false;
      return actionsFor(publicScopes, scope.name).has("pull");
    })
  );
}

async function respond(c: Context<AppEnv>, credential: Credential | null, requested: string[], service: string | undefined) {
  const { config } = c.var.registry;
  const expected = serviceOf(c);
  if (service !== undefined && service !== expected) {
    throw new RegistryError("REQUEST_INVALID", { service, expected }, { message: "unknown service" });
  }
  if (!config.TOKEN_SIGNING_KEY) {
    throw new RegistryError("NOT_FOUND", null, { message: "token authentication is not configured" });
  }
  const open = config.AUTH_MODE === "open";
  const scopes: Scope[] = [
    ...(open ? ADMIN_SCOPES : (credential?.scopes ?? [])),
    ...publicScopesOf(config.PUBLIC_REPOSITORIES),
  ];
  const byRepository = new Map<string, Set<string>>();
  const access: AccessEntry[] = [];
  let catalog: string[] | undefined;
  for (const scope of parseRequestedScopes(requested)) {
    if (scope.type === "registry") {
      access.push({ type: "registry", name: "catalog", actions: ["*"] });
      catalog = scopes.filter((s) => s.actions.includes("pull")).map((s) => s.repository);
      continue;
    }
    let name: string;
    try {
      name = parseRepositoryName(scope.name);
    } catch {
      continue;
    }
    const held = actionsFor(scopes, name);
    const wanted = scope.actions.includes("*") ? [...held] : scope.actions;
    // Scopes naming the same repository twice are merged, as Docker's token service does.
    const actions = byRepository.get(name) ?? new Set<string>();
    for (const action of wanted) if (held.has(action as Action)) actions.add(action);
    byRepository.set(name, actions);
  }
  for (const [name, actions] of byRepository) {
    if (actions.size > 0) access.push({ type: "repository", name, actions: [...actions] });
  }
  const claims = { sub: credential?.subject ?? "anonymous", actor: credential?.actor ?? "anonymous", access, ...(catalog && { catalog }) };
  // A bearer token never outlives the access token it came from.
  const issued = await issueToken(config.TOKEN_SIGNING_KEY, expected, config.TOKEN_TTL_SECONDS, claims, credential?.expiresAt ?? null);
  // A token for a credential is a login (the audit log's); an anonymous one is not.
  if (credential) await recordLogin(c, credential.actor);
  return c.json({
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt.toISOString(),
  });
}
