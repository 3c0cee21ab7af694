import { z } from "zod";
import type { Actor } from "../audit/events";
import { generateAccessToken, hashSecret } from "../auth/credentials";
import { Scope } from "../auth/scopes";
import { RegistryError } from "../errors";
import { AccessTokenRecords, type AccessTokenRecord } from "../storage/access-token-records";

export const NewAccessToken = z.object({
  name: z.string().min(1).max(100),
  owner: z.string().min(1).max(200).optional(),
  scopes: z.array(Scope).min(1),
  /** Expiry as a time (ISO 8601) or in days from now. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  expiresInDays: z.number().positive().max(3650).optional(),
});
export type NewAccessToken = z.infer<typeof NewAccessToken>;

/** An access token as the admin API shows it: never with its secret, never with its hash. */
export interface AccessTokenView {
  id: string;
  name: string;
  owner: string | null;
  scopes: Scope[];
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

const view = (record: AccessTokenRecord): AccessTokenView => ({
  id: record.id,
  name: record.name,
  owner: record.owner,
  scopes: record.scopes,
  createdAt: new Date(record.createdAt).toISOString(),
  expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
  revokedAt: record.revokedAt === null ? null : new Date(record.revokedAt).toISOString(),
});

/** An access token's id (the part after ocr_); another text names no token. */
export type AccessTokenId = string;
export function parseAccessTokenId(id: string): AccessTokenId {
  if (!/^[a-z0-9]{16}$/.test(id)) throw new RegistryError("NOT_FOUND", { id: id.slice(0, 32) }, { message: "no such active access token" });
  return id;
}

export class AccessTokenService {
  private readonly records: AccessTokenRecords;

  constructor(db: D1Database) {
    this.records = new AccessTokenRecords(db);
  }

  /** Creates a token `by` someone (the audit log says who); its secret is returned this once and stored only as a hash. */
  async create(input: NewAccessToken, by: Actor): Promise<AccessTokenView & { token: string }> {
    const now = Date.now();
    const expiresAt = input.expiresAt
      ? Date.parse(input.expiresAt)
      : input.expiresInDays
        ? now + input.expiresInDays * 86_400_000
        : null;
    if (expiresAt !== null && expiresAt <= now) {
      throw new RegistryError("REQUEST_INVALID", { expiresAt: input.expiresAt }, { message: "expiry is in the past" });
    }
    const { id, secret, token } = generateAccessToken();
    const record: AccessTokenRecord = {
      id,
      name: input.name,
      owner: input.owner ?? null,
      secretHash: await hashSecret(secret),
      scopes: input.scopes,
      createdAt: now,
      expiresAt,
      revokedAt: null,
    };
    await this.records.insert(record, by);
    return { ...view(record), token };
  }

  async list(): Promise<AccessTokenView[]> {
    return (await this.records.list()).map(view);
  }

  async revoke(id: AccessTokenId, by: Actor): Promise<void> {
    if (!(await this.records.revoke(id, Date.now(), by))) {
      throw new RegistryError("NOT_FOUND", { id }, { message: "no such active access token" });
    }
  }
}
