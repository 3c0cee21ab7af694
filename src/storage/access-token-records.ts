// SQL for access tokens (the registry's credentials).
import type { Actor } from "../audit/events";
import type { Scope } from "../auth/scopes";
import { AuditRecords } from "./audit-records";

export interface AccessTokenRecord {
  id: string;
  name: string;
  owner: string | null;
  secretHash: string;
  scopes: Scope[];
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

interface Row {
  id: string;
  name: string;
  owner: string | null;
  secret_hash: string;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

const toRecord = (row: Row): AccessTokenRecord => ({
  id: row.id,
  name: row.name,
  owner: row.owner,
  secretHash: row.secret_hash,
  scopes: JSON.parse(row.scopes) as Scope[],
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  revokedAt: row.revoked_at,
});

export class AccessTokenRecords {
  constructor(private readonly db: D1Database) {}

  async find(id: string): Promise<AccessTokenRecord | null> {
    const row = await this.db.prepare("SELECT * FROM access_tokens WHERE id = ?").bind(id).first<Row>();
    return row ? toRecord(row) : null;
  }

  /** Stores a new token and its audit row (never its secret), in one batch. */
  async insert(token: AccessTokenRecord, by: Actor): Promise<void> {
    const detail = { name: token.name, owner: token.owner, scopes: token.scopes, expiresAt: token.expiresAt };
    await this.db.batch([
      this.db
        .prepare(
          `INSERT INTO access_tokens (id, name, owner, secret_hash, scopes, created_at, expires_at, revoked_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
        )
        .bind(token.id, token.name, token.owner, token.secretHash, JSON.stringify(token.scopes), token.createdAt, token.expiresAt),
      new AuditRecords(this.db).insert(by, { action: "token.create", target: token.id, detail }, { where: "1" }, token.createdAt),
    ]);
  }

  async list(): Promise<AccessTokenRecord[]> {
    const { results } = await this.db.prepare("SELECT * FROM access_tokens ORDER BY created_at, id").all<Row>();
    return results.map(toRecord);
  }

  /** Revokes an active token, recorded in the audit log in the same batch; false when there was none. */
  async revoke(id: string, at: number, by: Actor): Promise<boolean> {
    const [result] = await this.db.batch([
      this.db.prepare("UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").bind(at, id),
      // Right after the update: recorded when it revoked the token (changes() is its count).
      new AuditRecords(this.db).insert(by, { action: "token.revoke", target: id }, { where: "changes() = 1" }, at),
    ]);
    return (result?.meta.changes ?? 0) > 0;
  }
}
