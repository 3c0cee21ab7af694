// D1 as the storage classes use it: the database itself or one of its read-replica sessions.
export type Database = Pick<D1Database, "prepare" | "batch">;

/** The header a client echoes to read its own writes from a replica (D1's name for the position in its log). */
export const BOOKMARK_HEADER = "X-D1-Bookmark";

// D1 bookmarks are hex fields joined by dashes; anything else is ignored rather than handed to D1.
const BOOKMARK = /^[0-9a-f]{1,64}(-[0-9a-f]{1,64}){0,7}$/;

/**
 * D1 as one request sees it, through the Sessions API (read replication):
 * - `nearby` may be a replica that lags the primary; for content addressed by digest, which never changes, a miss is
 *   asked again on `current` (a push just made may not have reached the replica yet);
 * - `current` has every write committed before the request: the primary, or, when the client sent the bookmark of
 *   its last response, any replica that has caught up with it (so a client always reads its own writes).
 * Writes go to the primary either way. Sessions open on first use: a request the edge cache answers opens none.
 */
export class RequestDatabase {
  private nearbySession: D1DatabaseSession | null = null;
  private currentSession: D1DatabaseSession | null = null;

  private constructor(
    private readonly db: D1Database,
    private readonly bookmark: string | null,
    private readonly replicas: boolean,
  ) {}

  /** Sessions for a request that may carry a bookmark. */
  static forRequest(db: D1Database, headers: Headers): RequestDatabase {
    const sent = headers.get(BOOKMARK_HEADER)?.trim() ?? "";
    return new RequestDatabase(db, BOOKMARK.test(sent) ? sent : null, true);
  }

  /** Everything on the primary (Durable Objects, cron jobs: nothing there may read behind a write). */
  static primary(db: D1Database): RequestDatabase {
    return new RequestDatabase(db, null, false);
  }

  get nearby(): Database {
    if (!this.replicas) return this.db;
    if (this.bookmark !== null) return this.current;
    return (this.nearbySession ??= this.db.withSession("first-unconstrained"));
  }

  get current(): Database {
    if (!this.replicas) return this.db;
    return (this.currentSession ??= this.db.withSession(this.bookmark ?? "first-primary"));
  }

  /** Whether `nearby` may lag `current`, so that a miss there is worth asking again. */
  get mayLag(): boolean {
    return this.replicas && this.bookmark === null;
  }

  /** What the client sends back to read at least as new as this response: the newest position this request saw. */
  latestBookmark(): string | null {
    return this.currentSession?.getBookmark() ?? this.nearbySession?.getBookmark() ?? null;
  }
}

/** A lookup of immutable content: the nearest replica first, then, on a miss, the current state. */
export async function findNearby<T>(db: RequestDatabase, find: (db: Database) => Promise<T | null>): Promise<T | null> {
  const found = await find(db.nearby);
  if (found !== null || !db.mayLag) return found;
  return find(db.current);
}
