import { RegistryError } from "../errors";
import type { RequestDatabase } from "../storage/database";
import { isFiltering, MATCHES, SearchRecords, type Match, type RepositoryRecord, type TagFilter, type TagOrder, type TagRecord } from "../storage/search-records";
import { decodeCursor, encodeCursor } from "./cursor";

export interface RepositoryHit extends Omit<RepositoryRecord, "rank"> {
  /** How the name or description matched the query; null when listing without one. */
  match: Match | null;
}

export interface Page<T> {
  items: T[];
  /** The cursor of the next page, null on the last. */
  next: string | null;
}

const MAX_QUERY = 128;

/** A search query as matched: trimmed, lowercase (repository names are), bounded. */
export function normalizeQuery(query: string | undefined): string {
  return (query ?? "").trim().toLowerCase().slice(0, MAX_QUERY);
}

/** Finding repositories and listing tags with what a person browsing wants to see. */
export class SearchService {
  constructor(private readonly db: RequestDatabase) {}

  /**
   * Repositories whose name contains the query, or whose latest manifest's annotations have a word starting with it:
   * exact names first, then prefixes, substrings, and description matches; with patterns, only repositories matching
   * one (the caller's pull rights). It reads the matches and the page, not the registry. A listing may lag a push by
   * the replication delay. A filter keeps repositories by their latest tag (see SearchRecords.listFiltered).
   */
  async repositories(query: string, patterns: string[] | null, cursor: string | undefined, limit: number, filter: TagFilter = {}): Promise<Page<RepositoryHit>> {
    if (query === "" && isFiltering(filter)) return this.filteredList(patterns, cursor, limit, filter);
    const found = await new SearchRecords(this.db.nearby).search(query, patterns, decodeCursor(cursor), limit + 1, filter);
    const items = found.slice(0, limit);
    const last = items.at(-1);
    return {
      items: items.map(({ rank, ...record }) => ({ ...record, match: query === "" ? null : MATCHES[rank]! })),
      next: found.length > limit && last ? encodeCursor({ key: last.rank, name: last.name }) : null,
    };
  }

  /** A filtered listing without a query: a bounded scan of names per page, going on after the last one it read. */
  private async filteredList(patterns: string[] | null, cursor: string | undefined, limit: number, filter: TagFilter): Promise<Page<RepositoryHit>> {
    const { records, scannedTo } = await new SearchRecords(this.db.nearby).listFiltered(patterns, decodeCursor(cursor)?.name ?? "", limit + 1, filter);
    const items = records.slice(0, limit);
    const last = items.at(-1);
    const next = records.length > limit && last ? last.name : scannedTo;
    return { items: items.map(({ rank: _rank, ...record }) => ({ ...record, match: null })), next: next === null ? null : encodeCursor({ key: 0, name: next }) };
  }

  async repository(name: string): Promise<RepositoryHit | null> {
    const record = await new SearchRecords(this.db.current).repository(name);
    if (!record) return null;
    const { rank: _rank, ...rest } = record;
    return { ...rest, match: null };
  }

  async tag(repository: string, name: string): Promise<TagRecord | null> {
    return new SearchRecords(this.db.current).tag(repository, name);
  }

  /** A repository's tags, newest push first, or most recently pulled first; with a filter, those it keeps. */
  async tags(repository: string, cursor: string | undefined, limit: number, order: TagOrder = "pushed", filter: TagFilter = {}): Promise<Page<TagRecord>> {
    const records = new SearchRecords(this.db.current);
    const after = decodeCursor(cursor);
    const found = await records.tags(repository, after, limit + 1, order, filter);
    if (found.length === 0 && after === null && !(await records.repository(repository))) {
      throw new RegistryError("NAME_UNKNOWN", { repository });
    }
    const items = found.slice(0, limit);
    const last = items.at(-1);
    const key = (tag: TagRecord) => (order === "pushed" ? tag.pushedAt : (tag.lastPulledAt ?? 0));
    return { items, next: found.length > limit && last ? encodeCursor({ key: key(last), name: last.name }) : null };
  }
}
