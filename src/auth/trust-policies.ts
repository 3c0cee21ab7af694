import { z } from "zod";
import { jsonList } from "../json-setting";
import { patternMatches, Scope } from "./scopes";

// OIDC_TRUST_POLICIES: which CI identities may exchange their OIDC token for registry access (README: "CI without
// secrets"). A token is trusted by a policy when it is signed by the policy's issuer, names its audience, and every
// claim the policy lists matches one of its patterns; it gets the scopes of every policy that trusts it.
//   [{"issuer": "https://token.actions.githubusercontent.com", "audience": "registry.example.com",
//     "claims": {"repository": "my-org/app", "ref": "refs/heads/main"},
//     "scopes": [{"repository": "my-org/app", "actions": ["pull", "push"]}]}]

/** Asymmetric algorithms only: a shared-secret (HS*) or unsigned (`none`) token proves nothing about its issuer. */
export const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"] as const;

// A claim pattern: `*` stands for any run of characters (as in repository patterns); a list matches any of its items.
const ClaimPattern = z.string().min(1).max(500);

export const TrustPolicy = z.object({
  /** For logs: which policy granted a login. */
  name: z.string().min(1).max(100).optional(),
  /** The tokens' `iss`, exactly as they write it; its discovery document is `<issuer>/.well-known/openid-configuration`. */
  issuer: z.url(),
  /** A value the token's `aud` must hold (GitHub: the `audience` the job asks for; GitLab: `id_tokens.<name>.aud`). */
  audience: z.string().min(1).max(500),
  /** Claim name → pattern(s); a token missing a listed claim, or holding a non-text value in it, is not trusted. */
  claims: z
    .record(z.string().min(1).max(100), z.union([ClaimPattern, z.array(ClaimPattern).min(1).max(100)]))
    .refine((claims) => Object.keys(claims).length > 0, "name at least one claim (e.g. GitHub's repository): issuer and audience alone trust every job of every project of that issuer")
    .refine(
      (claims) => Object.values(claims).flat().some((pattern) => pattern.replaceAll("*", "") !== ""),
      "at least one claim pattern must be more than '*': issuer and audience alone trust every job of every project of that issuer",
    ),
  scopes: z.array(Scope).min(1),
  /** Algorithms accepted for this policy's tokens (GitHub and GitLab sign with RS256). */
  algorithms: z.array(z.enum(ALGORITHMS)).min(1).default(["RS256", "ES256"]),
});
export type TrustPolicy = z.infer<typeof TrustPolicy>;

export const TrustPolicies = jsonList(TrustPolicy);

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Why a URL may not be fetched for an issuer's keys (the issuer itself, or its jwks_uri), or null when it may: https,
 * or plain http to a loopback host when OIDC_ALLOW_HTTP_ISSUERS says so (a test's local issuer).
 */
export function insecureUrlProblem(url: string, allowHttp: boolean): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a URL";
  }
  if (parsed.protocol === "https:") return null;
  if (parsed.protocol === "http:" && allowHttp && LOOPBACK.has(parsed.hostname)) return null;
  return allowHttp ? "must be https, or http on a loopback host (127.0.0.1, localhost, [::1])" : "must be https (OIDC_ALLOW_HTTP_ISSUERS=true allows a loopback http issuer for tests)";
}

/** The policies that trust a verified token: its audience, its algorithm and every claim they name. */
export function trustingPolicies(policies: readonly TrustPolicy[], algorithm: string, claims: Record<string, unknown>): TrustPolicy[] {
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  return policies.filter(
    (policy) =>
      claims.iss === policy.issuer &&
      audiences.includes(policy.audience) &&
      (policy.algorithms as string[]).includes(algorithm) &&
      Object.entries(policy.claims).every(([name, patterns]) => claimMatches(claims[name], patterns)),
  );
}

function claimMatches(value: unknown, patterns: string | string[]): boolean {
  // GitLab sends some flags as text ("ref_protected": "true"), others may send booleans or numbers: compared as text.
  if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") return false;
  const text = String(value);
  return (Array.isArray(patterns) ? patterns : [patterns]).some((pattern) => patternMatches(pattern, text));
}
