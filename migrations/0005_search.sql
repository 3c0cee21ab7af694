-- Browsing and search (the web UI and /api/search). Two tables derived from manifests and tags, so that listings
-- and searches read one row per item instead of parsing manifests:
-- - manifest_summaries: facts about a manifest, recorded in the batch that stores it;
-- - repository_search: each repository's latest tag and the text its manifest's annotations offer to search,
--   refreshed in every batch that adds, moves or deletes a tag (src/storage/search-records.ts says how).
-- What those rows hold is defined once, by the views below. (No triggers: `wrangler d1 migrations apply --remote`
-- is reported to split trigger bodies at their semicolons.)

-- Newest first: tag listings, and a repository's latest tag.
CREATE INDEX tags_updated_at ON tags(repository, updated_at);

-- content_size: bytes of an image's config and layers, or for an index the sum over its manifests (NULL when one is
-- not stored yet, as a mirror's index before its images). platforms: for an index, a JSON list of "os/arch[/variant]".
CREATE TABLE manifest_summaries (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  content_size INTEGER,
  platforms TEXT,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

-- What manifest_summaries holds for a stored manifest, from its body (a body too large for D1 is in R2: an image's
-- size then comes from its blobs' rows, an index's platforms are unknown). buildx lists its attestations as
-- platform unknown/unknown: not a platform one can run.
CREATE VIEW manifest_facts AS
SELECT
  m.repository,
  m.digest,
  CASE
    WHEN json_type(m.body, '$.manifests') = 'array' THEN (
      SELECT CASE WHEN COUNT(s.digest) = COUNT(*) THEN SUM(s.content_size) END
      FROM json_each(m.body, '$.manifests') c
      LEFT JOIN manifest_summaries s ON s.repository = m.repository AND s.digest = c.value ->> '$.digest')
    WHEN m.body IS NOT NULL THEN
      COALESCE(m.body ->> '$.config.size', 0)
        + (SELECT COALESCE(SUM(l.value ->> '$.size'), 0) FROM json_each(m.body, '$.layers') l)
    ELSE (
      SELECT SUM(b.size) FROM manifest_references r JOIN blobs b ON b.digest = r.child
      WHERE r.repository = m.repository AND r.manifest = m.digest AND +r.kind = 'blob')
  END AS content_size,
  CASE WHEN json_type(m.body, '$.manifests') = 'array' THEN (
    SELECT json_group_array(platform) FROM (
      SELECT (c.value ->> '$.platform.os') || '/' || (c.value ->> '$.platform.architecture')
          || COALESCE('/' || (c.value ->> '$.platform.variant'), '') AS platform
      FROM json_each(m.body, '$.manifests') c
      WHERE c.value ->> '$.platform.os' IS NOT NULL AND c.value ->> '$.platform.os' <> 'unknown'
      GROUP BY platform ORDER BY MIN(c.key)))
  END AS platforms
FROM manifests m;

-- search_text: the lowercased values of the annotations of the latest tag's manifest and, for an index, of its
-- images (timestamps, revisions and digests left out: nobody searches for those).
CREATE TABLE repository_search (
  repository TEXT PRIMARY KEY,
  tag TEXT NOT NULL,
  digest TEXT NOT NULL,
  pushed_at INTEGER NOT NULL,
  description TEXT,
  search_text TEXT NOT NULL
) WITHOUT ROWID;

-- The row repository_search holds for each repository with tags: its most recently pushed tag.
CREATE VIEW repository_latest AS
SELECT
  t.repository,
  t.name AS tag,
  t.digest,
  t.updated_at AS pushed_at,
  COALESCE(
    m.annotations ->> '$."org.opencontainers.image.description"',
    (SELECT x.annotations ->> '$."org.opencontainers.image.description"'
     FROM manifest_references r JOIN manifests x ON x.repository = r.repository AND x.digest = r.child
     WHERE r.repository = t.repository AND r.manifest = t.digest AND +r.kind = 'manifest'
       AND x.annotations ->> '$."org.opencontainers.image.description"' IS NOT NULL
     LIMIT 1)) AS description,
  COALESCE((
    SELECT lower(group_concat(DISTINCT a.value))
    FROM (
      SELECT m.annotations AS annotations
      UNION ALL
      SELECT x.annotations FROM manifest_references r JOIN manifests x ON x.repository = r.repository AND x.digest = r.child
      WHERE r.repository = t.repository AND r.manifest = t.digest AND +r.kind = 'manifest'
    ) s, json_each(s.annotations) a
    WHERE a.type = 'text'
      AND a.key NOT IN ('org.opencontainers.image.created', 'org.opencontainers.image.revision',
        'org.opencontainers.image.base.digest', 'org.opencontainers.image.ref.name')), '') AS search_text
FROM repositories p
JOIN tags t ON t.repository = p.name AND t.name = (
  SELECT n.name FROM tags n WHERE n.repository = p.name ORDER BY n.updated_at DESC, n.name DESC LIMIT 1)
JOIN manifests m ON m.repository = t.repository AND m.digest = t.digest;

-- What was pushed before this migration. Twice: an index's size adds up its images', known after the first pass.
INSERT OR REPLACE INTO manifest_summaries SELECT * FROM manifest_facts;
INSERT OR REPLACE INTO manifest_summaries SELECT * FROM manifest_facts;
INSERT OR REPLACE INTO repository_search SELECT * FROM repository_latest;
