-- The audit log (README: "Audit log"): who changed what, and which changes and logins were refused. A row is written
-- in the same batch as the change it records wherever D1 allows (src/storage/audit-records.ts), and deleted once
-- older than AUDIT_RETENTION_DAYS by the garbage collector, a bounded batch at a time through audit_events_by_time.
CREATE TABLE audit_events (
  -- Insertion order: ties in `at` (one batch, or isolates' clocks) still page in a fixed order.
  id INTEGER PRIMARY KEY,
  -- Epoch milliseconds.
  at INTEGER NOT NULL,
  -- An access token's id, "admin", an OIDC identity (oidc:<issuer>#<sub>), "gc", or "anonymous".
  actor TEXT NOT NULL,
  -- The client's address (CF-Connecting-IP), when the request had one.
  client TEXT,
  -- manifest.push, tag.move, manifest.delete, tag.delete, blob.delete, token.create, token.revoke, login, admin.gc, ...
  action TEXT NOT NULL,
  repository TEXT,
  -- A digest, a tag or an access token's id.
  target TEXT,
  result TEXT NOT NULL CHECK (result IN ('ok', 'denied', 'failed')),
  -- A small JSON object (never a secret).
  detail TEXT
);
-- Newest first, by any one filter: each listing is an index seek (the other filters are checked on the rows it reads),
-- and retention deletes the oldest rows from the front of the time index. Rows with no repository (logins, tokens)
-- are left out of the repository index.
CREATE INDEX audit_events_by_time ON audit_events(at);
CREATE INDEX audit_events_by_action ON audit_events(action, at);
CREATE INDEX audit_events_by_actor ON audit_events(actor, at);
CREATE INDEX audit_events_by_repository ON audit_events(repository, at) WHERE repository IS NOT NULL;
