import type { MiddlewareHandler } from "hono";
import type { Waiter } from "../cache/edge";
import type { AppEnv } from "../context";
import { pathOf } from "../routes/path";
import { MirrorContentRecords } from "../storage/mirror-records";

// Pulls (GETs of a manifest, by tag or digest) are counted in each isolate's memory and written in one D1 batch, after
// a response, once FLUSH_EVERY_MS have passed since the first unwritten pull or MAX_PENDING manifests have pulls
// unwritten: a statement per manifest pulled per flush, never a write per pull. An isolate that goes away loses at
// most that much; what it loses only makes eviction see a pull as older than it was.
const FLUSH_EVERY_MS = 30_000;
const MAX_PENDING = 500;

/** The latest pull of each manifest not yet written, by repository and digest. */
const pending = new Map<string, { repository: string; digest: string; at: number }>();
let pendingSince: number | null = null;

export function countPull(repository: string, digest: string, at = Date.now()): void {
  pendingSince ??= at;
  pending.set(`${repository}@${digest}`, { repository, digest, at });
}

/** Counts a successful manifest GET, whoever answered it (the handler, or the edge cache in front of it). */
export const countsPulls: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.req.method !== "GET" || c.res.status !== 200) return;
  const digest = c.res.headers.get("Docker-Content-Digest");
  if (!digest) return;
  countPull(pathOf(c).repository, digest);
  flushPullsWhenDue(c.env.DB, c.executionCtx);
};

export function flushPullsWhenDue(db: D1Database, waiter: Waiter): void {
  if (pendingSince === null) return;
  if (pending.size < MAX_PENDING && Date.now() - pendingSince < FLUSH_EVERY_MS) return;
  waiter.waitUntil(flushPulls(db));
}

/** Writes this isolate's pulls now; a failed write keeps them for the next flush (a later pull of one wins). */
export async function flushPulls(db: D1Database): Promise<void> {
  if (pendingSince === null) return;
  const pulls = [...pending.values()];
  pending.clear();
  pendingSince = null;
  try {
    await new MirrorContentRecords(db).touch(pulls);
  } catch (error) {
    console.error(JSON.stringify({ event: "pulls-not-written", error: String(error) }));
    for (const pull of pulls) {
      const key = `${pull.repository}@${pull.digest}`;
      if (!pending.has(key)) countPull(pull.repository, pull.digest, pull.at);
    }
  }
}
