-- The bytes and count of stored blobs, kept in the same D1 batches as the blob rows they count (recording a blob
-- adds, the collector's delete subtracts), so the quota is one row read and checked inside the insert itself.
CREATE TABLE storage_usage (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  bytes INTEGER NOT NULL,
  blobs INTEGER NOT NULL
);
INSERT INTO storage_usage (id, bytes, blobs) SELECT 1, COALESCE(SUM(size), 0), COUNT(*) FROM blobs;

-- Whether a manifest in a repository references a blob or child manifest: asked by every delete.
CREATE INDEX manifest_references_repository_child ON manifest_references(repository, child, kind);
