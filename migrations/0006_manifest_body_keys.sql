-- Manifests too large for a D1 row keep their bytes in R2 under a key of their own, named here, as blobs do: a
-- fresh key per write, never reused, so garbage collection can delete an object no row names without racing a push.
ALTER TABLE manifests ADD COLUMN body_key TEXT;
-- Bodies stored before this migration are at manifests/<algorithm>/<encoded>.
UPDATE manifests SET body_key = 'manifests/' || replace(digest, ':', '/') WHERE body IS NULL;
CREATE INDEX manifests_body_key ON manifests(body_key) WHERE body_key IS NOT NULL;
