-- Per-mirror counters (GET /admin/mirrors). Isolates add what they counted in memory, one UPSERT per mirror and
-- flush (src/mirror/stats.ts), never a write per request.
CREATE TABLE mirror_stats (
  prefix TEXT PRIMARY KEY,
  hits INTEGER NOT NULL DEFAULT 0,
  misses INTEGER NOT NULL DEFAULT 0,
  revalidations INTEGER NOT NULL DEFAULT 0,
  stale_serves INTEGER NOT NULL DEFAULT 0,
  upstream_errors INTEGER NOT NULL DEFAULT 0,
  bytes_from_upstream INTEGER NOT NULL DEFAULT 0,
  bytes_saved INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
