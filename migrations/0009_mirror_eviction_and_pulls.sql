-- What each mirror stored, for eviction (a mirror's maxBytes): one row per mirrored manifest, with the bytes it
-- stands for (itself, and for an image its config and layers, counted per image even when layers are shared, so the
-- mirror's stored bytes are at most the sum) and when it was last pulled (added by each isolate's flush of the pulls
-- it counted, src/services/pulls.ts). Written in the same batch as the manifest it describes.
CREATE TABLE mirror_contents (
  prefix TEXT NOT NULL,
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  last_pulled_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
-- The collector evicts the least recently pulled first: an index seek per mirror, however much it holds.
CREATE INDEX mirror_contents_by_last_pull ON mirror_contents(prefix, last_pulled_at);

-- The sum of mirror_contents.bytes per mirror, kept in the same batches as the rows it sums.
CREATE TABLE mirror_usage (
  prefix TEXT PRIMARY KEY,
  bytes INTEGER NOT NULL,
  manifests INTEGER NOT NULL
) WITHOUT ROWID;

-- Pre-warming (a mirror's prewarm setting): each tag kept warm, when it was last refreshed and how that went. A cron
-- pass refreshes the tags attempted longest ago first.
CREATE TABLE mirror_prewarm (
  prefix TEXT NOT NULL,
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  attempted_at INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('warm', 'failed')),
  digest TEXT,
  fetched_bytes INTEGER NOT NULL,
  detail TEXT,
  warmed_at INTEGER,
  PRIMARY KEY (prefix, repository, tag)
) WITHOUT ROWID;

-- Pull statistics: how many times, and when last, each manifest and each tag was pulled (a GET of the manifest).
-- Isolates count in memory and add their counts here in batches (src/services/pulls.ts), never a write per pull.
CREATE TABLE manifest_pulls (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  pulls INTEGER NOT NULL,
  last_pulled_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE TABLE tag_pulls (
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  pulls INTEGER NOT NULL,
  last_pulled_at INTEGER NOT NULL,
  PRIMARY KEY (repository, tag)
) WITHOUT ROWID;
