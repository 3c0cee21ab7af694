import { z } from "zod";

export const ACTIONS = ["pull", "push", "delete"] as const;
export type Action = (typeof ACTIONS)[number];

// A repository pattern: a name in which `*` stands for any run of characters, slashes included ("team/*").
// The same syntax is SQLite's GLOB restricted to `*`, so the catalog filters in SQL with the very same patterns.
export const RepositoryPattern = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-z0-9._\-/*]+$/, "a repository pattern has lowercase names, '/', and '*' as wildcard");

export const Scope = z.object({
  repository: RepositoryPattern,
  actions: z.array(z.enum(ACTIONS)).min(1),
});
export type Scope = z.infer<typeof Scope>;

export function patternMatches(pattern: string, repository: string): boolean {
  if (!pattern.includes("*")) return pattern === repository;
  const source = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`).test(repository);
}

/** The actions the scopes grant on a repository. */
export function actionsFor(scopes: readonly Scope[], repository: string): Set<Action> {
  const granted = new Set<Action>();
  for (const scope of scopes) {
    if (patternMatches(scope.repository, repository)) for (const action of scope.actions) granted.add(action);
  }
  return granted;
}

/**
 * A requested token scope, Docker style: `repository:<name>:<actions>` or `registry:catalog:*`. Unknown types and
 * malformed scopes are ignored (a token grants less, never errs).
 */
export type RequestedScope =
  | { type: "repository"; name: string; actions: string[] }
  | { type: "registry"; name: "catalog"; actions: ["*"] };

export function parseRequestedScopes(values: string[]): RequestedScope[] {
  const scopes: RequestedScope[] = [];
  for (const value of values.flatMap((v) => v.split(" ")).filter(Boolean)) {
    const first = value.indexOf(":");
    const last = value.lastIndexOf(":");
    if (first < 0 || last === first) continue;
    const type = value.slice(0, first);
    const name = value.slice(first + 1, last);
    const actions = value.slice(last + 1).split(",").filter(Boolean);
    if (type === "repository") scopes.push({ type, name, actions });
    else if (type === "registry" && name === "catalog") scopes.push({ type, name, actions: ["*"] });
  }
  return scopes;
}
