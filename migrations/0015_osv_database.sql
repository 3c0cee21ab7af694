-- The OSV vulnerability database (README: "SBOM scanning"): OSV records imported through POST /admin/osv/import, the
-- CLI's osv-import or the OSV_FEEDS refresh, reduced to what matching SBOM packages needs (src/osv/record.ts); the
-- scans of manifests' SBOMs against it; and the state of the bounded jobs that keep both current (src/osv/jobs.ts).

CREATE TABLE osv_advisories (
  id TEXT PRIMARY KEY,
  -- The record's own `modified` (RFC 3339): a re-import of the same record writes nothing.
  modified TEXT NOT NULL,
  -- Set when the record was withdrawn: it never matches.
  withdrawn TEXT,
  summary TEXT NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'unknown')),
  imported_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per affected[] entry: the package, and its ranges and versions as JSON, evaluated in the Worker with the
-- ecosystem's version rules. A package lookup is a seek on (ecosystem, name).
CREATE TABLE osv_affected (
  advisory TEXT NOT NULL,
  seq INTEGER NOT NULL,
  -- As the record names it ("npm", "PyPI", "Debian:12", "Alpine:v3.19"); PyPI names normalized (PEP 503).
  ecosystem TEXT NOT NULL,
  name TEXT NOT NULL,
  -- JSON: [{type, events: [{introduced} | {fixed} | {last_affected} | {limit}]}]
  ranges TEXT NOT NULL,
  -- JSON: [version, …]
  versions TEXT NOT NULL,
  -- The package's own severity when the record gives one, else NULL (the advisory's applies).
  severity TEXT,
  PRIMARY KEY (advisory, seq)
) WITHOUT ROWID;
CREATE INDEX osv_affected_package ON osv_affected(ecosystem, name);

-- One row: the database's generation, bumped by every import that changed a record (scans of an older one are
-- stale), and the walk over manifests that finds SBOMs pushed before scanning existed (done once).
CREATE TABLE osv_database (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  discovery_done INTEGER NOT NULL,
  discovery_repository TEXT,
  discovery_digest TEXT
);
INSERT INTO osv_database (id, generation, updated_at, discovery_done) VALUES (1, 0, 0, 0);

-- OSV_FEEDS: per export URL, how far its refresh got. An export (a zip of one record per entry) is imported
-- `cursor` entries at a time across cron runs; `etag` is that of the last export imported to its end, asked with
-- If-None-Match, and `pending_etag` that of the one being imported (a different one restarts at entry 0).
CREATE TABLE osv_feeds (
  url TEXT PRIMARY KEY,
  ecosystem TEXT NOT NULL,
  etag TEXT,
  pending_etag TEXT,
  cursor INTEGER NOT NULL,
  imported INTEGER NOT NULL,
  last_error TEXT,
  checked_at INTEGER NOT NULL,
  completed_at INTEGER
) WITHOUT ROWID;

-- Manifests with SBOM referrers and the database generation their last scan used (-1: never scanned). Rescans take
-- the lowest generations first, on the index, a bounded number per cron run. Findings themselves are in the findings
-- store (migrations/0014_vulnerability_findings.sql, source 'osv-scan').
CREATE TABLE osv_scans (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  generation INTEGER NOT NULL,
  -- JSON: the SBOM referrers' digests the scan read.
  sboms TEXT NOT NULL,
  packages INTEGER NOT NULL,
  findings INTEGER NOT NULL,
  scanned_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX osv_scans_generation ON osv_scans(generation, repository, digest);
