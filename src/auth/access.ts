import type { Config } from "../config";
import { actionsFor, patternMatches, type Action, type Scope } from "./scopes";
import type { TokenClaims } from "./signing";

/** What the caller of a request may do, however it proved who it is. */
export interface Access {
  /** "anonymous", an access token's name, or "admin". */
  subject: string;
  /** Who the audit log names: an access token's id, "admin", an OIDC identity, or "anonymous". */
  actor: string;
  /** How the caller identified: nothing, a password (Basic), a token we issued (Bearer), or an open registry. */
  via: "none" | "basic" | "bearer" | "open";
  allows(repository: string, action: Action): boolean;
  /** Patterns of the repositories the caller may pull (for the catalog); null when it may pull all. */
  pullPatterns: string[] | null;
}

export const OPEN_ACCESS: Access = { subject: "anonymous", actor: "anonymous", via: "open", allows: () => true, pullPatterns: null };

/** Access by scopes: an anonymous caller's (the public rules) or a credential's (its scopes and the public rules). */
export function scopedAccess(subject: string, via: "none" | "basic", scopes: Scope[], actor = "anonymous"): Access {
  return {
    subject,
    actor,
    via,
    allows: (repository, action) => actionsFor(scopes, repository).has(action),
    pullPatterns: scopes.filter((scope) => scope.actions.includes("pull")).map((scope) => scope.repository),
  };
}

/** Access by a bearer token: exactly the grants it carries, plus what is public to everyone. */
export function bearerAccess(claims: TokenClaims, publicScopes: Scope[]): Access {
  const granted = new Map<string, Set<string>>();
  // A token may list a repository more than once (clients send overlapping scopes): its grants add up.
  for (const entry of claims.access) {
    if (entry.type !== "repository") continue;
    const actions = granted.get(entry.name) ?? new Set<string>();
    for (const action of entry.actions) actions.add(action);
    granted.set(entry.name, actions);
  }
  return {
    subject: claims.sub,
    actor: claims.actor,
    via: "bearer",
    allows: (repository, action) =>
      granted.get(repository)?.has(action) === true || actionsFor(publicScopes, repository).has(action),
    pullPatterns: [...(claims.catalog ?? []), ...publicScopes.map((scope) => scope.repository)],
  };
}

export function publicScopesOf(patterns: string[]): Scope[] {
  return patterns.map((repository) => ({ repository, actions: ["pull"] }));
}

/** Whether anyone may pull the repository without credentials. */
export function isPublicRepository(config: Pick<Config, "AUTH_MODE" | "PUBLIC_REPOSITORIES">, repository: string): boolean {
  return config.AUTH_MODE === "open" || config.PUBLIC_REPOSITORIES.some((pattern) => patternMatches(pattern, repository));
}
