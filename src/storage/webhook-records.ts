// SQL for webhook delivery status: a counter row per endpoint (migrations/0012_webhook_deliveries.sql), written once
// per queue batch, and a bounded list of each endpoint's last dead-lettered deliveries. Read by GET /admin/webhooks.
import type { Database } from "./database";

/** How many dead-lettered deliveries are kept per endpoint (older ones are dropped as newer come). */
export const DEAD_LETTERS_KEPT = 20;

/** One delivery attempt's result. */
export interface DeliveryOutcome {
  endpoint: string;
  ok: boolean;
  /** The receiver's HTTP status; null when it gave none (network error, timeout). */
  status: number | null;
  error: string | null;
  at: number;
}

export interface DeadLetter {
  endpoint: string;
  eventId: string;
  action: string;
  repository: string;
  event: string;
  queuedAt: number;
}

export interface DeliveryStatus {
  delivered: number;
  failed: number;
  deadLettered: number;
  lastSuccess: { at: string } | null;
  lastFailure: { at: string; status: number | null; error: string | null } | null;
  recentDeadLetters: {
    eventId: string;
    action: string;
    repository: string;
    event: unknown;
    queuedAt: string;
    deadAt: string;
    lastStatus: number | null;
    lastError: string | null;
  }[];
}

interface CounterRow {
  endpoint: string;
  delivered: number;
  failed: number;
  dead_lettered: number;
  last_success_at: number | null;
  last_failure_at: number | null;
  last_failure_status: number | null;
  last_failure_error: string | null;
}

interface DeadLetterRow {
  endpoint: string;
  event_id: string;
  action: string;
  repository: string;
  event: string;
  queued_at: number;
  dead_at: number;
  last_status: number | null;
  last_error: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

function byEndpointOf<T extends { endpoint: string }>(items: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(item.endpoint, [...(groups.get(item.endpoint) ?? []), item]);
  return groups;
}

export class WebhookRecords {
  constructor(private readonly db: Database) {}

  /** Adds a batch's outcomes: one statement per endpoint, all in one D1 batch. */
  async record(outcomes: DeliveryOutcome[]): Promise<void> {
    const byEndpoint = byEndpointOf(outcomes);
    if (byEndpoint.size === 0) return;
    await this.db.batch(
      [...byEndpoint].map(([endpoint, results]) => {
        const successes = results.filter((result) => result.ok);
        const failures = results.filter((result) => !result.ok).sort((a, b) => a.at - b.at);
        const lastFailure = failures.at(-1);
        return this.db
          .prepare(
            `INSERT INTO webhook_deliveries (endpoint, delivered, failed, last_success_at, last_failure_at, last_failure_status, last_failure_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (endpoint) DO UPDATE SET
               delivered = delivered + excluded.delivered,
               failed = failed + excluded.failed,
               last_success_at = coalesce(max(excluded.last_success_at, last_success_at), excluded.last_success_at, last_success_at),
               last_failure_status = iif(excluded.last_failure_at IS NULL, last_failure_status, excluded.last_failure_status),
               last_failure_error = iif(excluded.last_failure_at IS NULL, last_failure_error, excluded.last_failure_error),
               last_failure_at = coalesce(excluded.last_failure_at, last_failure_at)`,
          )
          .bind(
            endpoint,
            successes.length,
            failures.length,
            successes.length > 0 ? Math.max(...successes.map((result) => result.at)) : null,
            lastFailure?.at ?? null,
            lastFailure?.status ?? null,
            lastFailure?.error ?? null,
          );
      }),
    );
  }

  /**
   * Records deliveries the queue gave up on: counted, and kept with the endpoint's last failure (the dead-letter queue
   * does not say why), at most DEAD_LETTERS_KEPT per endpoint.
   */
  async deadLettered(letters: DeadLetter[], at = Date.now()): Promise<void> {
    if (letters.length === 0) return;
    const statements = letters.map((letter) =>
      this.db
        .prepare(
          `INSERT INTO webhook_dead_letters (endpoint, event_id, action, repository, event, queued_at, dead_at, last_status, last_error)
           SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, d.last_failure_status, d.last_failure_error
           FROM (SELECT 1) LEFT JOIN webhook_deliveries d ON d.endpoint = ?1`,
        )
        .bind(letter.endpoint, letter.eventId, letter.action, letter.repository, letter.event, letter.queuedAt, at),
    );
    for (const [endpoint, list] of byEndpointOf(letters)) {
      statements.push(
        this.db
          .prepare(
            `INSERT INTO webhook_deliveries (endpoint, dead_lettered) VALUES (?1, ?2)
             ON CONFLICT (endpoint) DO UPDATE SET dead_lettered = dead_lettered + excluded.dead_lettered`,
          )
          .bind(endpoint, list.length),
        this.db
          .prepare(
            `DELETE FROM webhook_dead_letters WHERE endpoint = ?1 AND id <= (
               SELECT id FROM webhook_dead_letters WHERE endpoint = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`,
          )
          .bind(endpoint, DEAD_LETTERS_KEPT),
      );
    }
    await this.db.batch(statements);
  }

  /** The status of each named endpoint (zeros for one that never had a delivery), with its last `recent` dead letters. */
  async status(endpoints: string[], recent = 10): Promise<Map<string, DeliveryStatus>> {
    const status = new Map<string, DeliveryStatus>();
    if (endpoints.length === 0) return status;
    const names = JSON.stringify(endpoints);
    const [counters, letters] = await this.db.batch<CounterRow | DeadLetterRow>([
      this.db.prepare("SELECT * FROM webhook_deliveries WHERE endpoint IN (SELECT value FROM json_each(?1))").bind(names),
      // A seek per endpoint on (endpoint, id), the newest first.
      this.db
        .prepare(
          `SELECT l.* FROM json_each(?1) e
           JOIN webhook_dead_letters l ON l.id IN (SELECT id FROM webhook_dead_letters WHERE endpoint = e.value ORDER BY id DESC LIMIT ?2)
           ORDER BY l.id DESC`,
        )
        .bind(names, recent),
    ]);
    const rows = new Map(((counters?.results ?? []) as CounterRow[]).map((row) => [row.endpoint, row]));
    for (const endpoint of endpoints) {
      const row = rows.get(endpoint);
      status.set(endpoint, {
        delivered: row?.delivered ?? 0,
        failed: row?.failed ?? 0,
        deadLettered: row?.dead_lettered ?? 0,
        lastSuccess: row?.last_success_at ? { at: iso(row.last_success_at) } : null,
        lastFailure: row?.last_failure_at
          ? { at: iso(row.last_failure_at), status: row.last_failure_status, error: row.last_failure_error }
          : null,
        recentDeadLetters: [],
      });
    }
    for (const letter of (letters?.results ?? []) as DeadLetterRow[]) {
      status.get(letter.endpoint)?.recentDeadLetters.push({
        eventId: letter.event_id,
        action: letter.action,
        repository: letter.repository,
        event: JSON.parse(letter.event) as unknown,
        queuedAt: iso(letter.queued_at),
        deadAt: iso(letter.dead_at),
        lastStatus: letter.last_status,
        lastError: letter.last_error,
      });
    }
    return status;
  }
}
