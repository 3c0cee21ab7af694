// SQL for the audit log (audit_events). Rows are written by the statements built here, placed in the batches of the
// changes they record (manifest-records, access-token-records, retention-records, mirror-records).
import type { Actor, AuditEvent } from "../audit/events";
import type { Database } from "./database";

export type AuditResult = "ok" | "denied" | "failed";

/** Who a batch of deletions is recorded as, and why (the garbage collector: which rule, which mirror). */
export interface AuditNote {
  by: Actor;
  detail: Record<string, unknown>;
}

/** One row, as it is written. */
export interface AuditRow {
  at: number;
  actor: string;
  client: string | null;
  action: string;
  repository: string | null;
  target: string | null;
  result: AuditResult;
  detail: Record<string, unknown> | null;
}

export interface StoredAuditRow extends AuditRow {
  id: number;
}

/**
 * A condition for a row written in the batch of a change that may not happen (a guarded insert, a delete that finds
 * nothing): `where` is SQL true exactly when the change happens, and `detail`, if given, an SQL JSON object read at
 * that moment (a tag's previous digest) and added to the row's detail. Their parameters are numbered from ?2.
 */
export interface AuditGuard {
  where: string;
  detail?: string;
  params?: unknown[];
}

// A detail is small: anything larger is replaced by its size (details are built by this code, never by clients).
const MAX_DETAIL_CHARS = 2048;

// Rows a page reads at most when it checks filters beyond the one whose index it seeks.
const MAX_SCAN = 500;

/** Where a listing continues: the last row it returned, or the last it read. */
export interface AuditPosition {
  at: number;
  id: number;
}

export interface AuditFilter {
  action?: string;
  repository?: string;
  actor?: string;
  /** Rows at or after this time (epoch milliseconds). */
  since?: number;
  /** Rows at or before this time. */
  until?: number;
}

/** A row as D1 returns it: the detail still JSON text. */
interface Row extends Omit<StoredAuditRow, "detail"> {
  detail: string | null;
  chosen: number;
}

export class AuditRecords {
  constructor(private readonly db: Database) {}

  /** The INSERT of one row, to run in the batch of the change it records (or alone, for what changes nothing). */
  insert(by: Actor, event: AuditEvent, guard: AuditGuard = { where: "1" }, at = Date.now()): D1PreparedStatement {
    const detail = JSON.stringify(event.detail ?? {});
    const row: AuditRow = {
      at,
      actor: by.id,
      client: by.client,
      action: event.action,
      repository: event.repository ?? null,
      target: event.target ?? null,
      result: event.result ?? "ok",
      detail: detail.length > MAX_DETAIL_CHARS ? { truncated: detail.length } : (event.detail ?? {}),
    };
    return this.db
      .prepare(
        `INSERT INTO audit_events (at, actor, client, action, repository, target, result, detail)
         SELECT e ->> '$.at', e ->> '$.actor', e ->> '$.client', e ->> '$.action', e ->> '$.repository', e ->> '$.target',
           e ->> '$.result', NULLIF(json_patch(e -> '$.detail', ${guard.detail ?? "'{}'"}), '{}')
         FROM (SELECT ?1 AS e) WHERE ${guard.where}`,
      )
      .bind(JSON.stringify(row), ...(guard.params ?? []));
  }

  async record(by: Actor, event: AuditEvent): Promise<void> {
    await this.insert(by, event).run();
  }

  /**
   * Newest first, after `after`, at most `limit` rows matching the filter. The walk seeks the index of one filter
   * (repository, else actor, else action, else time) and checks the others on at most MAX_SCAN rows it reads: a page
   * costs a bounded read however large the log is, and may come back short, with the position to go on from.
   */
  async page(filter: AuditFilter, after: AuditPosition | null, limit: number): Promise<{ rows: StoredAuditRow[]; next: AuditPosition | null }> {
    const filters = (["repository", "actor", "action"] as const).filter((name) => filter[name] !== undefined);
    const driving = filters[0] ?? null;
    // One more than a page says whether more follow; with other filters to check, up to MAX_SCAN rows are read.
    const scan = filters.length > 1 ? Math.max(MAX_SCAN, limit + 1) : limit + 1;
    // The newest row to read: the filter's end, or, going on, the rows before the last one read (a time's rows in id order).
    const until = filter.until ?? Number.MAX_SAFE_INTEGER;
    const bound = after && after.at <= until ? { at: after.at, id: after.id - 1 } : { at: until, id: Number.MAX_SAFE_INTEGER };
    const { results } = await this.db
      .prepare(
        `SELECT id, at, actor, client, action, repository, target, result, detail,
           ((?1 IS NULL OR action = ?1) AND (?2 IS NULL OR repository = ?2) AND (?3 IS NULL OR actor = ?3)) AS chosen
         FROM audit_events
         WHERE ${driving ? `${driving} = ?${{ action: 1, repository: 2, actor: 3 }[driving]} AND ` : ""}at >= ?4 AND at <= ?5
           AND (at < ?5 OR id <= ?6)
         ORDER BY at DESC, id DESC LIMIT ?7`,
      )
      .bind(filter.action ?? null, filter.repository ?? null, filter.actor ?? null, filter.since ?? 0, bound.at, bound.id, scan)
      .all<Row>();
    const rows: StoredAuditRow[] = [];
    let read = 0;
    for (; read < results.length && rows.length < limit; read++) {
      if (results[read]!.chosen === 1) rows.push(toStored(results[read]!));
    }
    const last = results[read - 1];
    // More may follow when the page filled before the rows read ran out, or when the walk read all it may.
    const more = read < results.length || results.length === scan;
    return { rows, next: more && last ? { at: last.at, id: last.id } : null };
  }

  /** Deletes up to `limit` of the oldest rows written before `before` (from the front of the time index); returns how many. */
  async deleteBefore(before: number, limit: number): Promise<number> {
    const result = await this.db
      .prepare("DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)")
      .bind(before, limit)
      .run();
    return result.meta.changes;
  }

  /** How many rows deleteBefore would delete (a dry run). */
  async countBefore(before: number, limit: number): Promise<number> {
    const row = await this.db
      .prepare("SELECT count(*) AS n FROM (SELECT 1 FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)")
      .bind(before, limit)
      .first<{ n: number }>();
    return row?.n ?? 0;
  }
}

function toStored(row: Row): StoredAuditRow {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    client: row.client,
    action: row.action,
    repository: row.repository,
    target: row.target,
    result: row.result,
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
  };
}
