-- Garbage collection deletes a blob in two steps, a grace window apart: first it is marked (deleting_at), then,
-- if nothing referenced or linked it since, its row and bytes go. Anything that links or references a marked blob
-- clears the mark.
ALTER TABLE blobs ADD COLUMN deleting_at INTEGER;
CREATE INDEX blobs_deleting_at ON blobs(deleting_at) WHERE deleting_at IS NOT NULL;
CREATE INDEX blobs_object_key ON blobs(object_key);
CREATE INDEX manifest_references_kind_child ON manifest_references(kind, child);

-- Where the collector's walk over R2 stopped, so that each bounded pass continues from there.
CREATE TABLE gc_state (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
