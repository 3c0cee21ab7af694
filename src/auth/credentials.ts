import { ADMIN_ACTOR } from "../audit/events";
import { toHex } from "../digest";
import { AccessTokenRecords, type AccessTokenRecord } from "../storage/access-token-records";
import { ACTIONS, type Scope } from "./scopes";

/** Who presented a valid secret, and what it may do. */
export interface Credential {
  subject: string;
  /** Who the audit log names: the access token's id, "admin", or an OIDC identity (oidc:<issuer>#<sub>). */
  actor: string;
  scopes: Scope[];
  admin: boolean;
  /** When the credential stops being valid (epoch milliseconds); null when it does not expire. */
  expiresAt: number | null;
}

// ocr_<16 id chars>_<32 random bytes, base64url>: the id finds the row, the secret is compared by hash.
const ACCESS_TOKEN = /^ocr_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

export function generateAccessToken(): { id: string; secret: string; token: string } {
  const id = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { id, secret, token: `ocr_${id}_${secret}` };
}

/** The id part of an access token (ocr_<id>_…), which names its row; null when the text is not one. */
export function accessTokenIdOf(text: string): string | null {
  return ACCESS_TOKEN.exec(text)?.[1] ?? null;
}

export async function hashSecret(secret: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)));
}

/** Compares two secrets in time independent of where they differ (both are hashed to equal length first). */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([a, b].map((s) => crypto.subtle.digest("SHA-256", new TextEncoder().encode(s))));
  return crypto.subtle.timingSafeEqual(x!, y!);
}

export const ADMIN_SCOPES: Scope[] = [{ repository: "*", actions: [...ACTIONS] }];

/** The credential a password (an access token, or the admin token) stands for; null when it stands for none. */
export async function verifySecret(
  records: AccessTokenRecords,
  adminToken: string | undefined,
  password: string,
  now = Date.now(),
): Promise<Credential | null> {
  if (adminToken !== undefined && (await sameSecret(password, adminToken))) {
    return { subject: "admin", actor: ADMIN_ACTOR, scopes: ADMIN_SCOPES, admin: true, expiresAt: null };
  }
  const match = ACCESS_TOKEN.exec(password);
  if (!match) return null;
  const record = await records.find(match[1]!);
  if (!record || !usable(record, now)) return null;
  const hash = await hashSecret(match[2]!);
  if (!(await sameSecret(hash, record.secretHash))) return null;
  return { subject: record.name, actor: record.id, scopes: record.scopes, admin: false, expiresAt: record.expiresAt };
}

function usable(record: AccessTokenRecord, now: number): boolean {
  return record.revokedAt === null && (record.expiresAt === null || record.expiresAt > now);
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The user:password of an `Authorization: Basic` header, or null when it is not one. */
export function parseBasic(header: string): { user: string; password: string } | null {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return null;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(match[1]!), (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
