-- Search reads its matches, not the registry (issue 18): a query is looked up in an index of the places a match can
-- start instead of being tested against every repository's name and annotations. Entries, each the next 32
-- characters from its place (a longer query is looked up by its first 32, then checked whole):
-- - every position of a repository's name, so that any substring of it is found (exact, prefix, substring);
-- - every start of a word of its latest tag's annotations (repository_search.search_text; a word starts the text or
--   follows a character other than a-z and 0-9), so that a description matches where a word starts with the query.
-- A name is indexed once, in the batch that makes the repository or pushes its first tag (repositories are never
-- renamed or deleted); annotations in every batch that refreshes repository_search (src/storage/search-records.ts).
-- No triggers, as in 0005_search.sql. Plain tables rather than FTS5: D1 cannot export a database holding a virtual
-- table, and FTS5's segments would make the rows a search reads depend on the history of writes.
CREATE TABLE search_terms (
  term TEXT NOT NULL,
  repository TEXT NOT NULL,
  -- 0: the name, 1: the annotations.
  source INTEGER NOT NULL,
  PRIMARY KEY (term, repository, source)
) WITHOUT ROWID;
-- A repository's annotation entries, for replacing them when its latest tag changes.
CREATE INDEX search_terms_annotations ON search_terms(repository, term) WHERE source = 1;

-- The places entries start at: 1 to 1,024 (a name has at most 255 characters; annotations past the first 1,024 are
-- not indexed).
CREATE TABLE search_positions (i INTEGER PRIMARY KEY);
INSERT INTO search_positions (i)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1024) SELECT i FROM n;

-- The entries of each repository's name, and of its annotations.
CREATE VIEW search_name_terms AS
SELECT r.name AS repository, substr(r.name, p.i, 32) AS term
FROM repositories r JOIN search_positions p ON p.i <= length(r.name);

CREATE VIEW search_annotation_terms AS
SELECT s.repository, substr(s.search_text, p.i, 32) AS term
FROM repository_search s JOIN search_positions p ON p.i <= length(s.search_text)
WHERE (p.i = 1 OR substr(s.search_text, p.i - 1, 1) NOT GLOB '[a-z0-9]') AND substr(s.search_text, p.i, 1) <> ' ';

-- What was pushed before this migration.
INSERT OR IGNORE INTO search_terms (term, repository, source) SELECT term, repository, 0 FROM search_name_terms;
INSERT OR IGNORE INTO search_terms (term, repository, source) SELECT term, repository, 1 FROM search_annotation_terms;
