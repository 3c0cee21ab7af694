import { z } from "zod";
import { RegistryError } from "../errors";
import { AuditRecords, type AuditFilter, type AuditPosition, type StoredAuditRow } from "../storage/audit-records";
import type { Database } from "../storage/database";
import { AUDIT_ACTIONS } from "./events";

// Reading the audit log: GET /admin/audit and the web UI's /-/audit, with the same filters and pages.

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

// A time: epoch milliseconds, or an ISO 8601 date or date and time (UTC unless it has an offset), as a form sends it.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
const Time = z.string().transform((text, context) => {
  const value = timeOf(text);
  if (Number.isNaN(value)) {
    context.addIssue({ code: "custom", message: "not a time: epoch milliseconds or ISO 8601 (2026-05-01, 2026-05-01T12:00Z)" });
    return z.NEVER;
  }
  return value;
});

function timeOf(text: string): number {
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (!ISO_TIME.test(text)) return NaN;
  // A date and time without an offset is UTC (a date alone already is, to Date.parse).
  return Date.parse(text.includes("T") && !/(Z|[+-]\d{2}:\d{2})$/.test(text) ? `${text}Z` : text);
}

// The cursor is the position of the last row a page read: <at>.<id>.
const Cursor = z
  .string()
  .regex(/^\d{1,15}\.\d{1,15}$/, "not a cursor this registry gave")
  .transform((text): AuditPosition => {
    const [at, id] = text.split(".").map(Number);
    return { at: at!, id: id! };
  });

const blankless = (value: unknown) => (value === "" ? undefined : value);

/** The query of a listing; empty values mean no filter (a form sends every field). */
export const AuditQuery = z.object({
  action: z.preprocess(blankless, z.enum(AUDIT_ACTIONS).optional()),
  repository: z.preprocess(blankless, z.string().max(255).optional()),
  actor: z.preprocess(blankless, z.string().max(300).optional()),
  since: z.preprocess(blankless, Time.optional()),
  until: z.preprocess(blankless, Time.optional()),
  limit: z.preprocess(blankless, z.string().regex(/^\d{1,9}$/).transform(Number).pipe(z.number().int().min(1).max(MAX_LIMIT)).optional()),
  cursor: z.preprocess(blankless, Cursor.optional()),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

/** Parses a listing's query parameters; a bad one is a 400 naming it. */
export function parseAuditQuery(query: (name: string) => string | undefined): AuditQuery {
  const names = ["action", "repository", "actor", "since", "until", "limit", "cursor"] as const;
  const result = AuditQuery.safeParse(Object.fromEntries(names.map((name) => [name, query(name)])));
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ parameter: issue.path.join("."), message: issue.message }));
  if (issues.every((issue) => issue.parameter === "limit")) {
    throw new RegistryError("PAGINATION_NUMBER_INVALID", issues, { message: `limit must be an integer from 1 to ${MAX_LIMIT}` });
  }
  throw new RegistryError("REQUEST_INVALID", issues, { message: "invalid audit log query" });
}

/** An audit row as the API and the UI show it. */
export interface AuditEventView extends Omit<StoredAuditRow, "at"> {
  at: string;
}

const view = (row: StoredAuditRow): AuditEventView => ({ ...row, at: new Date(row.at).toISOString() });

/** One page of the log, newest first, and the cursor of the next (null at the end). */
export async function readAuditLog(db: Database, query: AuditQuery): Promise<{ events: AuditEventView[]; next: string | null }> {
  const filter: AuditFilter = {
    ...(query.action !== undefined && { action: query.action }),
    ...(query.repository !== undefined && { repository: query.repository }),
    ...(query.actor !== undefined && { actor: query.actor }),
    ...(query.since !== undefined && { since: query.since }),
    ...(query.until !== undefined && { until: query.until }),
  };
  const { rows, next } = await new AuditRecords(db).page(filter, query.cursor ?? null, query.limit ?? DEFAULT_LIMIT);
  return { events: rows.map(view), next: next ? `${next.at}.${next.id}` : null };
}

/** The query string of the next page: the same filters, with its cursor. */
export function nextPageQuery(query: (name: string) => string | undefined, cursor: string): string {
  const params = new URLSearchParams();
  for (const name of ["action", "repository", "actor", "since", "until", "limit"]) {
    const value = query(name);
    if (value) params.set(name, value);
  }
  params.set("cursor", cursor);
  return params.toString();
}
