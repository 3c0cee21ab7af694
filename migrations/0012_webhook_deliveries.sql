-- Webhook delivery status (src/storage/webhook-records.ts): a counter row per endpoint, written once per queue batch,
-- and the last dead-lettered deliveries of each endpoint (at most 20 kept).
CREATE TABLE webhook_deliveries (
  endpoint TEXT PRIMARY KEY,
  delivered INTEGER NOT NULL DEFAULT 0,
  -- Failed attempts (each retry counts).
  failed INTEGER NOT NULL DEFAULT 0,
  dead_lettered INTEGER NOT NULL DEFAULT 0,
  last_success_at INTEGER,
  last_failure_at INTEGER,
  -- The receiver's HTTP status, or NULL when there was none (a network error or a timeout).
  last_failure_status INTEGER,
  last_failure_error TEXT
);

CREATE TABLE webhook_dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint TEXT NOT NULL,
  event_id TEXT NOT NULL,
  action TEXT NOT NULL,
  repository TEXT NOT NULL,
  -- The event as it was sent (no secrets in it), for a manual replay.
  event TEXT NOT NULL,
  queued_at INTEGER NOT NULL,
  dead_at INTEGER NOT NULL,
  last_status INTEGER,
  last_error TEXT
);
CREATE INDEX webhook_dead_letters_by_endpoint ON webhook_dead_letters (endpoint, id);
