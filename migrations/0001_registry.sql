-- Metadata of the registry. Blob bytes live in R2; this says which digest is where and who may see it.

CREATE TABLE repositories (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per distinct blob, shared by every repository it is linked into.
CREATE TABLE blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  object_key TEXT NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Visibility: a blob is readable through a repository only when it was pushed or mounted there.
CREATE TABLE repository_blobs (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL REFERENCES blobs(digest),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

-- body holds the exact bytes pushed when small; larger bodies are in R2 under manifests/<alg>/<hex>.
CREATE TABLE manifests (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  body TEXT,
  subject TEXT,
  artifact_type TEXT,
  annotations TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_subject ON manifests(repository, subject) WHERE subject IS NOT NULL;

-- What each manifest points at: blobs (config, layers) and child manifests (index entries).
CREATE TABLE manifest_references (
  repository TEXT NOT NULL,
  manifest TEXT NOT NULL,
  child TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
  PRIMARY KEY (repository, manifest, child)
) WITHOUT ROWID;
CREATE INDEX manifest_references_child ON manifest_references(child);

CREATE TABLE tags (
  repository TEXT NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repository, name)
) WITHOUT ROWID;
CREATE INDEX tags_digest ON tags(repository, digest);
