import { calculateJwkThumbprint, exportJWK, importJWK, importPKCS8, jwtVerify, SignJWT, type CryptoKey, type JWK } from "jose";
import { ConfigError } from "../config";

const ALGORITHM = "ES256";
// Issuer and verifier are this one service, on clocks Cloudflare keeps in sync: a few seconds cover the skew between
// the machine that signs a token and the one that checks its nbf and exp. A token is accepted until exp + this.
export const CLOCK_TOLERANCE_SECONDS = 5;

interface Keys {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  kid: string;
}

// Importing a key is async and not free: once per isolate and secret.
const loaded = new Map<string, Promise<Keys>>();

export function signingKeys(secret: string): Promise<Keys> {
  let keys = loaded.get(secret);
  if (!keys) {
    keys = load(secret);
    loaded.set(secret, keys);
  }
  return keys;
}

async function load(secret: string): Promise<Keys> {
  try {
    const text = secret.trim();
    const privateKey = text.startsWith("{")
      ? ((await importJWK(JSON.parse(text) as JWK, ALGORITHM, { extractable: true })) as CryptoKey)
      : await importPKCS8(text.replaceAll("\\n", "\n"), ALGORITHM, { extractable: true });
    const { d: _private, ...publicJwk } = await exportJWK(privateKey);
    if (!_private) throw new Error("not a private key");
    const publicKey = (await importJWK(publicJwk, ALGORITHM)) as CryptoKey;
    return { privateKey, publicKey, kid: await calculateJwkThumbprint(publicJwk) };
  } catch (error) {
    throw new ConfigError([`TOKEN_SIGNING_KEY: not an EC P-256 private key in PKCS#8 PEM or JWK form (${(error as Error).message})`]);
  }
}

/** One grant of a token's `access` claim, as Docker's token spec shapes it. */
export interface AccessEntry {
  type: "repository" | "registry";
  name: string;
  actions: string[];
}

export interface TokenClaims {
  sub: string;
  /** Who the audit log names (Credential.actor, or "anonymous"): `sub` is a name, which several tokens may share. */
  actor: string;
  access: AccessEntry[];
  /** With the registry:catalog scope: the patterns of repositories the holder may pull, for filtering the catalog. */
  catalog?: string[];
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: Date;
}

/**
 * Signs a token for `lifetimeSeconds`, and, when the credential it stands for expires (`notAfter`, epoch
 * milliseconds), for no longer than the credential: it ends CLOCK_TOLERANCE_SECONDS before, so that it is refused
 * once the credential is.
 */
export async function issueToken(
  secret: string,
  service: string,
  lifetimeSeconds: number,
  claims: TokenClaims,
  notAfter: number | null = null,
): Promise<IssuedToken> {
  const { privateKey, kid } = await signingKeys(secret);
  const issuedAt = new Date();
  const now = Math.floor(issuedAt.getTime() / 1000);
  const exp = Math.min(now + lifetimeSeconds, notAfter === null ? Infinity : Math.floor(notAfter / 1000) - CLOCK_TOLERANCE_SECONDS);
  const token = await new SignJWT({ access: claims.access, actor: claims.actor, ...(claims.catalog && { catalog: claims.catalog }) })
    .setProtectedHeader({ alg: ALGORITHM, kid, typ: "JWT" })
    .setIssuer(service)
    .setAudience(service)
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(exp)
    .setJti(crypto.randomUUID())
    .sign(privateKey);
  return { token, expiresIn: Math.max(0, exp - now), issuedAt };
}

/** Verifies signature (ES256 only), issuer, audience, exp and nbf; throws on anything else. */
export async function verifyToken(secret: string, service: string, token: string): Promise<TokenClaims> {
  const { publicKey } = await signingKeys(secret);
  const { payload } = await jwtVerify(token, publicKey, {
    algorithms: [ALGORITHM],
    issuer: service,
    audience: service,
    requiredClaims: ["exp", "iat", "sub"],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
  });
  const access = Array.isArray(payload.access) ? (payload.access as AccessEntry[]) : [];
  const catalog = Array.isArray(payload.catalog) ? (payload.catalog as string[]) : undefined;
  // A token signed before the claim existed names its subject.
  const actor = typeof payload.actor === "string" ? payload.actor : payload.sub!;
  return { sub: payload.sub!, actor, access, ...(catalog && { catalog }) };
}
