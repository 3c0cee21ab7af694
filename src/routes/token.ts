import { Hono, type Context } from "hono";
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
    const credential = header ? await authenticateBasic(c, header) : null;
    return respond(c, credential, c.req.queries("scope") ?? [], c.req.query("service"));
  })
  .post("/token", async (c) => {
    const form = await readForm(c);
    const field = (name: string) => form.get(name) ?? undefined;
    if (field("grant_type") !== "password") {
      throw new RegistryError("REQUEST_INVALID", { grant_type: field("grant_type") ?? null }, { message: "only the password grant is supported" });
    }
    // Verified, limited and answered as a Basic password is.
    const credential = await authenticatePassword(c, field("username") ?? "", field("password") ?? "");
    return respond(c, credential, [field("scope") ?? ""], field("service"));
  });

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
  const claims = { sub: credential?.subject ?? "anonymous", access, ...(catalog && { catalog }) };
  // A bearer token never outlives the access token it came from.
  const issued = await issueToken(config.TOKEN_SIGNING_KEY, expected, config.TOKEN_TTL_SECONDS, claims, credential?.expiresAt ?? null);
  return c.json({
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt.toISOString(),
  });
}
