-- When each mirrored tag was last checked against its upstream (the tag's digest itself is in tags).
CREATE TABLE mirror_checks (
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  checked_at INTEGER NOT NULL,
  PRIMARY KEY (repository, tag)
) WITHOUT ROWID;
