// Repository patterns (`*` for any run of characters, src/auth/scopes.ts) read as index seeks: every name a pattern
// matches starts with its literal prefix (what comes before its first `*`), so a listing reads that range only.
import type { Database } from "./database";

export interface NameRange {
  /** The least name the pattern can match. */
  from: string;
  /** Every name it can match sorts before this. */
  to: string;
}

/** The range of names a pattern can match: its literal prefix's, or the one name when it has no `*`. */
export function rangeOf(pattern: string): NameRange {
  const star = pattern.indexOf("*");
  // A name that continues a name continues it with a character above U+0001; none sorts above U+10FFFF.
  if (star < 0) return { from: pattern, to: `${pattern}\u0001` };
  const prefix = pattern.slice(0, star);
  return { from: prefix, to: `${prefix}\u{10ffff}` };
}

/**
 * Repositories after `after` matching any of the patterns, in name order, at most `limit`: one seek per pattern on
 * its range, in one batch. A pattern whose only `*` ends it (`team/*`) or that has none reads at most `limit` names;
 * a `*` before the end reads the names of its range that do not match as well (`team/*-prod` reads all of team/), and a
 * leading one every name (unless nearly all match, as `*` does).
 */
export async function repositoriesMatching(db: Database, patterns: string[], after: string, limit: number): Promise<string[]> {
  if (patterns.length === 0) return [];
  const pages = await db.batch<{ name: string }>(
    patterns.map((pattern) => {
      const { from, to } = rangeOf(pattern);
      // One lower bound (SQLite seeks on only one): the range's start, or just after `after`.
      return db
        .prepare("SELECT name FROM repositories WHERE name >= max(?1, ?2 || char(1)) AND name < ?3 AND name GLOB ?4 ORDER BY name LIMIT ?5")
        .bind(from, after, to, pattern, limit);
    }),
  );
  // Names are ASCII: JavaScript's order is SQLite's.
  return [...new Set(pages.flatMap((page) => page.results.map((row) => row.name)))].sort().slice(0, limit);
}
