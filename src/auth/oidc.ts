import { decodeJwt, jwtVerify } from "jose";
import type { Config } from "../config";
import { RegistryError } from "../errors";
import type { Credential } from "./credentials";
import { IssuerKeys, IssuerUnavailable } from "./issuer-keys";
import { trustingPolicies } from "./trust-policies";

// OIDC workload identity federation (README: "CI without secrets"): a CI job logs in with user name OIDC_USER and
// its OIDC token as the password, and gets what the trust policies that trust the token grant (OIDC_TRUST_POLICIES).

/** The user name that says the password is an OIDC token (never an access token, so nothing is ambiguous). */
export const OIDC_USER = "oidc";

// Far above the 1–2 KiB CI providers issue; a longer password is not decoded at all.
const MAX_TOKEN_LENGTH = 16 * 1024;
// Between the issuer's clock and Cloudflare's: exp and nbf are checked this leniently.
const CLOCK_TOLERANCE_SECONDS = 30;

const issuerKeys = new IssuerKeys();

type OidcSettings = Pick<Config, "OIDC_TRUST_POLICIES" | "OIDC_ALLOW_HTTP_ISSUERS" | "LOG_REQUESTS">;

export type OidcVerdict = { credential: Credential; policies: string[] } | { refused: string; issuer?: string; subject?: string };

/**
 * The credential an OIDC token stands for, or null; one log line says which policies granted it, or why it was
 * refused (the client is told no more than for a wrong password). A 502 when the issuer's keys cannot be had: that
 * is neither a valid nor a wrong token.
 */
export async function oidcCredential(config: OidcSettings, token: string, keys = issuerKeys): Promise<Credential | null> {
  const verdict = await verifyOidcToken(config, token, keys);
  if (config.LOG_REQUESTS) {
    const line = "credential" in verdict
      ? { result: "granted", subject: verdict.credential.subject, policies: verdict.policies }
      : { result: "refused", reason: verdict.refused, issuer: verdict.issuer ?? null, subject: verdict.subject ?? null };
    console.log(JSON.stringify({ event: "oidc-login", ...line }));
  }
  return "credential" in verdict ? verdict.credential : null;
}

const MAX_SUB_CHARS = 200;

/**
 * The token's subject as the audit log, bearer tokens and logs name it: whole up to MAX_SUB_CHARS, else cut short and
 * ended by a hash of the whole, so that two subjects differing only past the cut are two actors, not one.
 */
async function boundedSub(sub: string): Promise<string> {
  if (sub.length <= MAX_SUB_CHARS) return sub;
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(sub)));
  return `${sub.slice(0, MAX_SUB_CHARS - 24)}~${[...hash.slice(0, 8)].map((byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/** Verifies the token against its issuer's keys and the trust policies that name that issuer. */
export async function verifyOidcToken(config: OidcSettings, token: string, keys = issuerKeys): Promise<OidcVerdict> {
  if (token.length > MAX_TOKEN_LENGTH) return { refused: `longer than ${MAX_TOKEN_LENGTH} characters` };
  let issuer: unknown;
  try {
    issuer = decodeJwt(token).iss;
  } catch {
    return { refused: "not a JWT" };
  }
  // Only an issuer a policy names is asked for keys: the token's say-so, unverified, picks among those alone.
  const policies = config.OIDC_TRUST_POLICIES.filter((policy) => policy.issuer === issuer);
  if (typeof issuer !== "string" || policies.length === 0) return { refused: "no trust policy names its issuer", issuer: String(issuer).slice(0, 200) };
  let verified;
  try {
    verified = await jwtVerify(token, keys.resolver(issuer, config.OIDC_ALLOW_HTTP_ISSUERS), {
      issuer,
      audience: [...new Set(policies.map((policy) => policy.audience))],
      // jose refuses `none` and, since the list names no HS* algorithm, tokens signed with a shared secret.
      algorithms: [...new Set(policies.flatMap((policy) => policy.algorithms))],
      requiredClaims: ["exp"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
  } catch (error) {
    if (error instanceof IssuerUnavailable) {
      throw new RegistryError("UPSTREAM_UNAVAILABLE", null, { message: `${error.message}; retry later`, headers: { "Retry-After": "60" } });
    }
    return { refused: (error as Error).message.slice(0, 200), issuer };
  }
  const { payload, protectedHeader } = verified;
  const sub = await boundedSub(String(payload.sub ?? ""));
  const subject = `oidc:${new URL(issuer).host}:${sub}`;
  const trusting = trustingPolicies(policies, protectedHeader.alg, payload);
  if (trusting.length === 0) return { refused: "no trust policy matches its claims", issuer, subject };
  return {
    credential: { subject, actor: `oidc:${issuer}#${sub}`, scopes: trusting.flatMap((policy) => policy.scopes), admin: false, expiresAt: payload.exp! * 1000 },
    policies: trusting.map((policy) => policy.name ?? `OIDC_TRUST_POLICIES.${config.OIDC_TRUST_POLICIES.indexOf(policy)}`),
  };
}
